"""``minddrive sim-view`` (animated BEV of an episode).

``minddrive sim-data`` (Bench2Drive-layout clips + Chat-B2D VQA) lives in :mod:`minddrive.data.sim_data_cli`: the
VQA it writes is the data layer's.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from minddrive.errors import UserError

CONSTANT_CONTROL = (0.0, 0.5, 0.0)   # steer, throttle, brake of the ``constant`` policy


def parse_image_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 16 or int(match.group(2)) < 16:
        raise UserError(f"--image-size: expected HxW with both >= 16, e.g. 900x1600, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--seed", type=int, default=0, help="base seed (routes, traffic, VQA phrasing)")
    parser.add_argument("--out", required=True, help="output animation, .gif or .mp4")
    parser.add_argument("--scenario", default=None, help="Bench2Drive scenario type to drive")
    parser.add_argument("--policy", choices=("expert", "constant"), default="expert")
    parser.add_argument("--max-steps", type=int, default=300, help="stop after this many env steps")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=400, help="picture side in pixels")


def run(args: argparse.Namespace) -> int:
    from minddrive.sim.viewer import VIDEO_SUFFIXES, render_episode
    from minddrive.sim.writer import make_env_and_expert

    if not args.out.lower().endswith(VIDEO_SUFFIXES):
        raise UserError(f"--out: expected a .gif or .mp4 path, got {args.out!r}")
    env, expert = make_env_and_expert()
    try:
        env.reset(seed=args.seed, options={"scenario": args.scenario} if args.scenario else None)
        frames = [env.snapshot()]
        for _ in range(args.max_steps):
            control = expert.act() if args.policy == "expert" else np.array(CONSTANT_CONTROL)
            _, _, terminated, truncated, _ = env.step(control)
            frames.append(env.snapshot())
            if terminated or truncated:
                break
    finally:
        env.close()
    path = render_episode(frames, args.out, fps=args.fps, size_px=args.size)
    print(f"wrote {len(frames)} frames to {path}")
    return 0
