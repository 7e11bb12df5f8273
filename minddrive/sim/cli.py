"""``minddrive sim-bench`` (stepping throughput) and the seeded route drivers of the built-in policies.

``minddrive sim-eval`` drives routes with :func:`drive_routes` and scores them; being an evaluation verb it lives
with the others in :mod:`minddrive.eval.sim_cli` (the simulator imports nothing above itself).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np

from minddrive.constants import ABILITY_NAMES
from minddrive.errors import UserError
from minddrive.sim.scenarios import SCENARIO_TYPES, scenarios_for_ability

POLICIES = ("expert", "constant")  # the built-in policies drive_routes knows
CONSTANT_SPEED = 6.0   # m/s held by the "go straight at constant speed" baseline


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--worlds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--render", action="store_true", help="also render the six cameras every step")
    parser.add_argument("--json", action="store_true")


def evaluation_routes(count: int, seed: int) -> list[dict]:
    """``count`` routes, scenario types taken round-robin over the five abilities, seeds from ``seed``."""
    if count < 1:
        raise UserError(f"--routes: expected >= 1, got {count}")
    queues = {a: list(scenarios_for_ability(a)) for a in ABILITY_NAMES}
    turn = {a: 0 for a in ABILITY_NAMES}
    seeds = np.random.default_rng(seed).integers(0, 100_000, size=count)
    routes = []
    for k in range(count):
        ability = ABILITY_NAMES[k % len(ABILITY_NAMES)]
        types = queues[ability]
        scenario_type = types[turn[ability] % len(types)]
        turn[ability] += 1
        routes.append(dict(id=str(k + 1), index=k, scenario_type=scenario_type, seed=int(seeds[k])))
    return routes


def constant_policy(obs: dict) -> np.ndarray:
    """Go straight (no steering) holding CONSTANT_SPEED, blind to everything."""
    return np.array([0.0, 0.5 if obs["ego_state"][0] < CONSTANT_SPEED else 0.0, 0.0])


def drive_routes(routes: list[dict], policy: str, progress: bool = True,
                 on_route_end: Callable[[dict, Any, dict], None] | None = None) -> list[dict]:
    """Drive each route with a built-in policy; ``on_route_end(route, env, record)`` sees the finished world."""
    from tqdm import tqdm

    from minddrive.sim.env import EmbeddedDriveEnv
    from minddrive.sim.expert import Expert

    env = EmbeddedDriveEnv()
    expert = Expert(env)
    records = []
    for route in tqdm(routes, desc=f"sim-eval {policy}", unit="route", disable=not progress):
        obs, _ = env.reset(seed=route["seed"], options=dict(
            scenario=route["scenario_type"], route_id=f"RouteScenario_{route['id']}_rep0",
            scenario_name=f"{route['scenario_type']}_1", index=route["index"]))
        done = False
        while not done:
            control = expert.act() if policy == "expert" else constant_policy(obs)
            obs, _, terminated, truncated, _ = env.step(control)
            done = terminated or truncated
        records.append(env.route_record())
        if on_route_end is not None:
            on_route_end(route, env, records[-1])
    return records


def bench_steps_per_second(worlds: int, steps: int, render: bool = False, seed: int = 0) -> dict:
    """Stepping throughput of a VecDriveEnv under constant control.

    ``steps_per_s`` = worlds x ticks / time spent inside ``step``; finished worlds are reset as
    the rollout collector does, and that cost is reported apart (``reset_ms`` per world reset).
    """
    from minddrive.sim.vector import VecDriveEnv

    env = VecDriveEnv(worlds, render=render)
    types = [SCENARIO_TYPES[k % len(SCENARIO_TYPES)] for k in range(worlds)]
    env.reset(seeds=[seed + k for k in range(worlds)], options_list=[{"scenario": t} for t in types])
    controls = np.tile([0.0, 0.4, 0.0], (worlds, 1))
    step_time, step_cpu, reset_time, resets = 0.0, 0.0, 0.0, 0
    for _ in range(steps):
        start, cpu = time.perf_counter(), time.process_time()
        _, _, terminated, _, _ = env.step(controls)
        step_time += time.perf_counter() - start
        step_cpu += time.process_time() - cpu
        start = time.perf_counter()
        for i in np.nonzero(terminated)[0]:
            env.reset_world(int(i), seed + 1000 + resets, {"scenario": types[i]})
            resets += 1
        reset_time += time.perf_counter() - start
    # CPU time tells the one-core rate on a shared machine, where wall time includes waiting for a core.
    return dict(steps_per_s=worlds * steps / step_time, steps_per_cpu_s=worlds * steps / max(step_cpu, 1e-9), reset_ms=1000 * reset_time / max(resets, 1), resets=resets)


def run(args: argparse.Namespace) -> int:
    if args.worlds < 1 or args.steps < 1:
        raise UserError("--worlds and --steps: expected positive integers")
    result = bench_steps_per_second(args.worlds, args.steps, args.render)
    if args.json:
        print(json.dumps(dict(result, worlds=args.worlds, steps=args.steps, render=bool(args.render))))
    else:
        print(f"{result['steps_per_s']:,.0f} env-steps/s wall, {result['steps_per_cpu_s']:,.0f} per CPU-second "
              f"({args.worlds} worlds x {args.steps} steps, "
              f"render={bool(args.render)}); {result['reset_ms']:.1f} ms per world reset")
    return 0
