"""``minddrive train`` and ``minddrive test`` (open-loop evaluation)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("config", help="mmengine Python config, e.g. adzoo/minddrive/configs/minddrive_tiny_train_stage1.py")
    if verb == "train":
        parser.add_argument("--work-dir", help="output folder (default: the config's work_dir)")
        parser.add_argument("--resume", action="store_true",
                            help="continue from the newest checkpoint in the work dir (optimiser, schedule, RNG, data order)")
        parser.add_argument("--overwrite", action="store_true",
                            help="move a used work dir aside (nothing is deleted) and start afresh")
        parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                            help="'pytorch' when started by torchrun (minddrive_dist_train.sh)")
        parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    else:
        parser.add_argument("checkpoint", help="checkpoint directory, or a work dir (its newest checkpoint)")
        parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
        parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", default=None,
                        help="override config keys, e.g. train_cfg.max_iters=10 seed=1")


def run(args: argparse.Namespace) -> int:
    from minddrive.config import load_config

    cfg = load_config(args.config, args.cfg_options)
    if args.verb == "train":
        from minddrive.train.trainer import train

        final = train(cfg, args.work_dir, resume=args.resume, launcher=args.launcher, overwrite=args.overwrite)
        print(f"final checkpoint: {final}")
        return 0

    from minddrive.train.openloop import evaluate_open_loop, format_table

    metrics = evaluate_open_loop(cfg, args.checkpoint, max_samples=args.max_samples)
    if args.json:
        json.dump(metrics, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_table(metrics))
    return 0
