"""``minddrive convert --ckpt IN --out OUT``: action expert -> decision expert + value net."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--ckpt", required=True, help="imitation-learning checkpoint directory")
    parser.add_argument("--out", required=True, help="where to write the converted checkpoint directory")


def run(args: argparse.Namespace) -> int:
    from minddrive.models.convert import convert_checkpoint

    convert_checkpoint(args.ckpt, args.out)
    return 0
