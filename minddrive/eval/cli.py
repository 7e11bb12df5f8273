"""``minddrive eval [CONFIG] (--ckpt CKPT | --policy expert|constant) [--suite S] [--workers N] [--out DIR] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from minddrive.eval.closed_loop import BUILTIN_POLICIES, RESULT_FILE, SCORE_FILE
from minddrive.eval.suite import DEFAULT_SUITE, available_suites

#: environment used when no CONFIG is given (built-in policies only need a simulator)
DEFAULT_ENV = dict(type="EmbeddedDriveEnv")


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("config", nargs="?", metavar="CONFIG",
                        help="model/env config (optional with --policy: the embedded simulator is used)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--ckpt", metavar="CKPT_DIR", help="checkpoint directory written by train/ppo")
    who.add_argument("--policy", choices=BUILTIN_POLICIES,
                     help="built-in baseline instead of a checkpoint: the privileged expert or constant control")
    parser.add_argument("--suite", default=DEFAULT_SUITE,
                        help=f"suite name ({', '.join(available_suites())}) or path to a suite JSON (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="simulators driven in parallel (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help=f"output folder for {RESULT_FILE} (leaderboard format) and {SCORE_FILE}; an existing "
                             "one is resumed (default: work_dirs/eval/<suite>_<policy or ckpt name>)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate only the suite's first N routes (a smaller N than before reports that subset)")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an --out of another run (checkpoint, config, suite) aside and start afresh")
    parser.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", help="override config keys")
    parser.add_argument("--json", action="store_true", help="print the score report as JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minddrive.config import Config, load_config
    from minddrive.eval.closed_loop import evaluate
    from minddrive.eval.scoring_cli import format_report
    from minddrive.errors import UserError

    if args.config:
        cfg = load_config(args.config, args.cfg_options)
    elif args.policy:
        cfg = Config(dict(env=DEFAULT_ENV))
    else:
        raise UserError("eval: CONFIG is required with --ckpt (it builds the model and the env)")
    name = args.policy or (Path(args.ckpt).name if args.ckpt else "model")
    out = args.out or f"work_dirs/eval/{Path(args.suite).stem}_{name}"
    score = evaluate(cfg, ckpt=args.ckpt, suite=args.suite, workers=args.workers, out=out, policy=args.policy,
                     limit=args.limit, progress=not args.json, overwrite=args.overwrite)
    for warning in score["warnings"]:
        print(f"minddrive eval: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(score, indent=2))
    else:
        from dataclasses import fields

        from minddrive.eval.scoring import ScoreReport

        report = ScoreReport(**{f.name: score[f.name] for f in fields(ScoreReport)})
        print(format_report(report, title=str(Path(out) / RESULT_FILE)))
    return 0
