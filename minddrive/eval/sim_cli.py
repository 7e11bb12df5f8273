"""``minddrive sim-eval``: drive seeded embedded-simulator routes with a built-in policy and score them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minddrive.sim.cli import POLICIES, drive_routes, evaluation_routes
from minddrive.sim.records import checkpoint
from minddrive.utils.io import write_json


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--policy", choices=POLICIES, default="expert")
    parser.add_argument("--routes", type=int, default=100, help="number of seeded routes (spread over the five abilities)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the route set")
    parser.add_argument("--out", required=True, help="folder for the result JSON (leaderboard checkpoint format)")
    parser.add_argument("--json", action="store_true", help="print the score as `minddrive score --json` does")


def run(args: argparse.Namespace) -> int:
    from minddrive.eval.scoring import score_records
    from minddrive.eval.scoring_cli import format_report

    routes = evaluation_routes(args.routes, args.seed)
    records = drive_routes(routes, args.policy)
    out = Path(args.out)
    result_path = out / f"sim_eval_{args.policy}_seed{args.seed}.json"
    write_json(result_path, checkpoint(records))
    report = score_records(records)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, title=str(result_path)))
    return 0
