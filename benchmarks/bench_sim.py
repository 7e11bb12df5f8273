"""State-only stepping throughput of the embedded simulator on ONE core (no rendering).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sim.py [--steps 200] [--worlds 1 8 32 64]

For each batch size, a ``VecDriveEnv`` runs every scenario family (world k gets type k mod the
number of types) under constant control, resetting finished worlds as the rollout collector
does; env-steps/s = worlds x ticks / time inside ``step`` (reset cost printed apart). The single ``EmbeddedDriveEnv`` and the
expert-driven single env are measured too, since data collection runs them.
"""

from __future__ import annotations

import argparse
import json
import time

from minddrive.sim.cli import bench_steps_per_second


def expert_steps_per_second(steps: int) -> float:
    from minddrive.sim.env import EmbeddedDriveEnv
    from minddrive.sim.expert import Expert

    env = EmbeddedDriveEnv()
    expert = Expert(env)
    env.reset(seed=0, options={"scenario": "SignalizedJunctionLeftTurn"})
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, _, _ = env.step(expert.act())
        if terminated:
            env.reset(seed=1, options={"scenario": "SignalizedJunctionLeftTurn"})
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 8, 32, 64])
    args = parser.parse_args()
    results = {}
    for w in args.worlds:
        bench = bench_steps_per_second(w, args.steps)
        results[f"vec_{w}_worlds"] = bench["steps_per_s"]
        results[f"vec_{w}_worlds_per_cpu_s"] = bench["steps_per_cpu_s"]
        print(f"{w:>3} worlds: {bench['steps_per_s']:10,.0f} env-steps/s wall ({bench['steps_per_cpu_s']:,.0f} per CPU-second), "
              f"{bench['reset_ms']:.1f} ms per reset "
              f"({bench['resets']} resets)")
    results["expert_single_env"] = expert_steps_per_second(args.steps)
    print(f"expert-driven single env: {results['expert_single_env']:,.0f} env-steps/s (expert + env)")
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
