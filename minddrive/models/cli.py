"""``minddrive convert --ckpt IN --out OUT``: action expert -> decision expert + value net."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--ckpt", required=True, help="imitation-learning checkpoint directory")
    parser.add_argument("--out", required=True, help="where to write the converted checkpoint directory "
                                                     "(absent, or an earlier conversion's output)")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing --out that is not a conversion's output aside (nothing is deleted)")


def run(args: argparse.Namespace) -> int:
    from minddrive.models.convert import convert_checkpoint

    convert_checkpoint(args.ckpt, args.out, overwrite=args.overwrite)
    return 0
