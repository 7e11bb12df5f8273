"""Rendering throughput of the embedded simulator's six-camera rig, on ONE core.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_render.py --steps 300 --json

Rates are per CPU-second of this process (``time.process_time``), so load from other processes on a
shared machine matters less; wall-clock rates are printed beside them. OpenCV is pinned to one thread.

* ``render_cameras``: six views of the hand-made junction (4 actors, a light, a stop sign) while the
  ego drives 30 m through it.
* ``render_bev``: the 200x200 BEV picture of the same scenes.
* ``env_step_render``: the issue's figure, "env-steps/s with six camera views rendered":
  ``EmbeddedDriveEnv(render=True).step`` (physics, criteria, observation, ``snapshot`` and
  ``render_cameras``) on seeded route 0 driven by the privileged expert, resets included; the
  expert's own ``act()`` time is excluded. ``env_step_render_with_expert`` includes it, and
  ``env_step_no_render`` is the same loop with ``render=False``.

``--json`` prints one object (``*_per_cpu_s`` and ``*_per_wall_s`` for each figure, plus the settings).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import cv2
import numpy as np


def timed_rates(fn, steps: int) -> tuple[float, float]:
    """(per CPU-second, per wall-second) rates of ``fn(i)`` over ``steps`` calls after one warm-up call."""
    fn(0)  # warm-up: map raster, renderer tables
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(steps):
        fn(i + 1)
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def env_rates(steps: int, render: bool, image_size: tuple[int, int]) -> dict[str, float]:
    """Expert-driven ``EmbeddedDriveEnv`` stepping rates: env only (expert excluded) and env + expert."""
    from minddrive.sim.writer import make_env_and_expert

    env, expert = make_env_and_expert(dict(type="EmbeddedDriveEnv", render=render, image_size=image_size))
    env.reset(seed=0)
    for _ in range(5):  # warm-up: map raster, renderer tables
        env.step(np.asarray(expert.act()))
    env_cpu = env_wall = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        control = np.asarray(expert.act())
        step_cpu, step_wall = time.process_time(), time.perf_counter()
        _, _, terminated, truncated, _ = env.step(control)
        if terminated or truncated:
            env.reset(seed=0)
        env_cpu += time.process_time() - step_cpu
        env_wall += time.perf_counter() - step_wall
    total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"per_cpu_s": steps / env_cpu, "per_wall_s": steps / env_wall,
            "with_expert_per_cpu_s": steps / total_cpu, "with_expert_per_wall_s": steps / total_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", default="256x448", help="HxW of each of the six views")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    height, width = (int(v) for v in args.size.lower().split("x"))

    from minddrive.sim.bev import render_bev
    from minddrive.sim.sensors import CameraRenderer
    from minddrive.sim.viewer import example_scene

    base = example_scene()
    scenes = []
    for i in range(args.steps + 1):
        scene = copy.copy(base)
        scene.ego = copy.copy(base.ego)
        scene.ego.x = base.ego.x + 0.1 * i   # drive 30 m through the junction
        scenes.append(scene)
    renderer = CameraRenderer(width, height)
    images = np.empty((6, height, width, 3), np.uint8)
    results: dict = {"steps": args.steps, "size": [height, width], "views": 6}
    cpu, wall = timed_rates(lambda i: renderer.render(scenes[i], images), args.steps)
    results.update(render_cameras_per_cpu_s=cpu, render_cameras_per_wall_s=wall,
                   render_cameras_cpu_ms=1000.0 / cpu)
    cpu, wall = timed_rates(lambda i: renderer.render_ground(scenes[i], images), args.steps)
    results.update(ground_only_cpu_ms=1000.0 / cpu)
    cpu, wall = timed_rates(lambda i: render_bev(scenes[i], 200, 50.0), args.steps)
    results.update(render_bev_per_cpu_s=cpu, render_bev_per_wall_s=wall)
    for name, render in (("env_step_no_render", False), ("env_step_render", True)):
        rates = env_rates(args.steps, render, (height, width))
        results.update({f"{name}_{key}": value for key, value in rates.items()})

    if args.json:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}))
        return
    r = results
    print(f"render_cameras 6x{height}x{width}: {r['render_cameras_per_cpu_s']:.1f} steps/CPU-s "
          f"({r['render_cameras_cpu_ms']:.2f} ms; ground+sky {r['ground_only_cpu_ms']:.2f} ms), "
          f"{r['render_cameras_per_wall_s']:.1f} steps/wall-s")
    print(f"render_bev 200x200: {r['render_bev_per_cpu_s']:.1f} frames/CPU-s, {r['render_bev_per_wall_s']:.1f} /wall-s")
    print(f"env step, no cameras: {r['env_step_no_render_per_cpu_s']:.1f} steps/CPU-s "
          f"({r['env_step_no_render_with_expert_per_cpu_s']:.1f} with the expert)")
    print(f"env step + render_cameras (six {height}x{width}): {r['env_step_render_per_cpu_s']:.1f} steps/CPU-s, "
          f"{r['env_step_render_per_wall_s']:.1f} steps/wall-s "
          f"({r['env_step_render_with_expert_per_cpu_s']:.1f} /CPU-s with the expert)")


if __name__ == "__main__":
    main()
