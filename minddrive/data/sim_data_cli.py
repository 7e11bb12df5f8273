"""``minddrive sim-data``: expert-driven clips in the Bench2Drive layout (the simulator's writer) plus Chat-B2D VQA
(:func:`minddrive.data.sim_vqa.frame_vqa`)."""

from __future__ import annotations

import argparse

from minddrive.errors import UserError
from minddrive.sim.data_cli import parse_image_size


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--seed", type=int, default=0, help="base seed (routes, traffic, VQA phrasing)")
    parser.add_argument("--out", required=True, help="dataset root; clips go to OUT/v1/<clip>, split to OUT/split.json, "
                        "the HD map of each clip's road network to OUT/maps (prepare-data --map-root)")
    parser.add_argument("--routes", type=int, default=10, help="number of clips (routes) to write")
    parser.add_argument("--vqa-out", default=None, help="Chat-B2D root: VQA_OUT/{train,val}/<clip>/<frame>.json")
    parser.add_argument("--image-size", default="900x1600", help="camera HxW (Bench2Drive: 900x1600)")
    parser.add_argument("--jpeg-quality", type=int, default=20, help="JPEG quality (Bench2Drive uses 20)")
    parser.add_argument("--workers", type=int, default=1, help="parallel clip writers (processes)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap frames per clip (quick runs)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of clips in the val split")


def run(args: argparse.Namespace) -> int:
    from minddrive.data.sim_vqa import frame_vqa
    from minddrive.sim.writer import write_dataset

    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality: expected 1..100, got {args.jpeg_quality}")
    clips = write_dataset(args.out, args.routes, seed=args.seed, vqa_root=args.vqa_out, workers=args.workers,
                          image_size=parse_image_size(args.image_size), jpeg_quality=args.jpeg_quality,
                          val_fraction=args.val_fraction, max_frames=args.max_frames, frame_vqa=frame_vqa)
    print(f"wrote {len(clips)} clips under {args.out}/v1 (split: {args.out}/split.json, HD maps: {args.out}/maps)")
    return 0
