"""Rendering throughput of the embedded simulator's six-camera rig, on ONE core.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_render.py [--steps 300] [--size 256x448]

Measures (a) ``render_cameras`` alone on the hand-made junction scene while the ego drives through
it, (b) the BEV picture, and (c) when the simulator core is present, ``env.step`` with rendering
(``snapshot`` + ``render_cameras``) on a seeded route. OpenCV is pinned to one thread.
"""

from __future__ import annotations

import argparse
import copy
import time

import cv2
import numpy as np


def steps_per_second(fn, steps: int) -> float:
    fn(0)  # warm-up: map raster, renderer tables
    start = time.perf_counter()
    for i in range(steps):
        fn(i + 1)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", default="256x448", help="HxW of each of the six views")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    height, width = (int(v) for v in args.size.lower().split("x"))

    from minddrive.sim.bev import render_bev
    from minddrive.sim.sensors import render_cameras
    from minddrive.sim.viewer import example_scene

    base = example_scene()
    scenes = []
    for i in range(args.steps + 1):
        scene = copy.copy(base)
        scene.ego = copy.copy(base.ego)
        scene.ego.x = base.ego.x + 0.1 * i   # drive 30 m through the junction
        scenes.append(scene)
    rate = steps_per_second(lambda i: render_cameras(scenes[i], width, height), args.steps)
    print(f"render_cameras 6x{height}x{width}: {rate:.1f} steps/s ({1000 / rate:.2f} ms/step)")
    rate = steps_per_second(lambda i: render_bev(scenes[i], 200, 50.0), args.steps)
    print(f"render_bev 200x200: {rate:.1f} frames/s")

    try:
        from minddrive.sim.writer import make_env_and_expert
        env, expert = make_env_and_expert()
    except ImportError as exc:
        print(f"env stepping with rendering: skipped (simulator core not available: {exc})")
        return
    env.reset(seed=0)

    def step_and_render(_):
        _, _, terminated, truncated, _ = env.step(np.asarray(expert.act()))
        if terminated or truncated:
            env.reset(seed=0)
        render_cameras(env.snapshot(), width, height)

    def step_only(_):
        _, _, terminated, truncated, _ = env.step(np.asarray(expert.act()))
        if terminated or truncated:
            env.reset(seed=0)

    base_rate = steps_per_second(step_only, args.steps)
    rate = steps_per_second(step_and_render, args.steps)
    print(f"env.step + expert, no cameras: {base_rate:.1f} steps/s")
    print(f"env.step + expert + snapshot + render_cameras 6x{height}x{width}: {rate:.1f} steps/s")


if __name__ == "__main__":
    main()
