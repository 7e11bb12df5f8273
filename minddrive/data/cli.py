"""``minddrive prepare-data``: build the train/val info index from Bench2Drive-layout clips."""

from __future__ import annotations

import argparse
import os

from minddrive.data.infos import build_info_index


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--root", required=True, help="data root holding the clips, e.g. data/bench2drive (clips in v1/)")
    parser.add_argument("--split-file", default=None,
                        help='Zoo split JSON {"val": ["v1/<clip>", ...]}; every other clip is train (none: all train)')
    parser.add_argument("--out", required=True, help="folder for b2d_infos_train.pkl and b2d_infos_val.pkl")
    parser.add_argument("--vqa-root", default=None,
                        help="Chat-B2D(-plus) root with <split>/<clip>/<frame:05>.json (meta-action labels, QA)")
    parser.add_argument("--map-root", default=None,
                        help="Bench2Drive-Map folder with <Town>_HD_map.npz (road boundaries for the boundary loss)")
    parser.add_argument("--label-rule", choices=("last", "question"), default="last",
                        help="meta-action QA of a Chat-B2D-plus file: its last QA pair (upstream MindDrive's rule) or the "
                             "pair whose question is 'What actions should the car be taking?'")
    parser.add_argument("--controls", choices=("expert", "anno"), default="expert",
                        help="ego steer/throttle/brake: expert_assessment's action as Bench2Drive-Zoo reads it (the "
                             "anno's where a clip has none), or the anno's applied controls")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="worker processes (clips are indexed in parallel; 0 or 1: in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    summary = build_info_index(args.root, args.split_file, args.out, vqa_root=args.vqa_root, workers=args.workers,
                               progress=not args.no_progress, map_root=args.map_root, label_rule=args.label_rule,
                               controls=args.controls)
    print(f"wrote {os.path.join(args.out, 'b2d_infos_train.pkl')} ({summary['train']} frames) and "
          f"{os.path.join(args.out, 'b2d_infos_val.pkl')} ({summary['val']} frames)")
    return 0
