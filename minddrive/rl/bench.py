"""Rollout throughput: decision steps per second of the batched driver with a config's policy and env.

    OMP_NUM_THREADS=1 python -m minddrive.rl.bench adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py \\
        --worlds 8 --ticks 100 [--ckpt CKPT] [--eager-render]

``--eager-render`` renders every world's cameras at every tick (the behaviour before lazy rendering),
for a before/after comparison on the same machine. Sampled decisions, rollout traces on, as in RL.
"""

from __future__ import annotations

import argparse
import json
import time


def bench(cfg, ckpt: str | None, worlds: int, ticks: int, eager_render: bool = False, seed: int = 1_000_000,
          policy=None) -> dict:
    """``policy`` replaces the one ``cfg``/``ckpt`` would load (e.g. a real-shape model with random weights
    on a GPU, ``benchmarks/gpu_bench.py``'s collector part)."""
    import torch

    from minddrive.rl.collector import make_jobs
    from minddrive.rl.rewards import reward_factory
    from minddrive.rollout.driver import PolicyDriver
    from minddrive.rollout.policy import load_policy, policy_module
    from minddrive.rollout.worlds import build_worlds

    torch.set_num_threads(1)
    if policy is None:
        policy = load_policy(cfg, ckpt)
    policy_module(policy).eval()
    vec = build_worlds(cfg, worlds)
    driver = PolicyDriver(vec, policy, decision_interval=cfg.rollout.get("decision_interval", 5), sample=True,
                          record_traces=True, reward_factory=reward_factory(cfg.reward), stop_on_penalty=True)
    if eager_render:  # undo the driver's lazy cameras: render all worlds inside every step, as before
        driver.envs.lazy_images = False
        driver.envs.vec.render = True
    jobs = make_jobs(dict(type="seeds", count=10_000, seed_start=seed))
    count = [0]

    class Enough(Exception):
        pass

    def on_tick() -> None:
        count[0] += 1
        if count[0] >= ticks:
            raise Enough

    started = time.perf_counter()
    try:
        driver.run(iter(jobs), on_tick=on_tick)
    except Enough:
        pass
    seconds = time.perf_counter() - started
    stats = dict(driver.stats)
    return dict(worlds=worlds, ticks=count[0], seconds=round(seconds, 2), eager_render=eager_render,
                decision_steps=stats["decisions"], decision_steps_per_s=round(stats["decisions"] / seconds, 2),
                policy_calls=stats["policy_calls"], policy_s=round(stats["policy_s"], 2),
                render_s=round(stats["render_s"], 2), sim_s=round(stats["sim_s"], 2))


def main(argv: list[str] | None = None) -> int:
    from minddrive.config import load_config

    parser = argparse.ArgumentParser(prog="python -m minddrive.rl.bench", description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--ckpt", default=None, help="checkpoint (default: weights built from the config)")
    parser.add_argument("--worlds", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--eager-render", action="store_true")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    print(json.dumps(bench(cfg, args.ckpt, args.worlds, args.ticks, args.eager_render)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
