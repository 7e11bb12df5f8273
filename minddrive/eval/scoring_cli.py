"""``minddrive score RESULT [--json] [--routes ROUTES.xml | --expected N]``: print Bench2Drive metrics."""

from __future__ import annotations

import argparse
import json
import sys

from minddrive.constants import ABILITY_NAMES, INFRACTION_KEYS
from minddrive.eval.scoring import OFFICIAL_ROUTE_COUNT, ScoreReport, score_path
from minddrive.utils.io import write_json


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("result", metavar="RESULT",
                        help="merged result JSON, raw leaderboard checkpoint JSON, or a folder of checkpoints to merge")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--output", metavar="FILE",
                        help="also write the JSON report to FILE (atomically; an existing FILE must be such a report)")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing --output that is not a score report aside (nothing is deleted)")
    route_set = parser.add_mutually_exclusive_group()
    route_set.add_argument("--routes", metavar="ROUTES.xml",
                           help="route file: fixes the route set (official denominator) and each route's scenario type")
    route_set.add_argument("--expected", type=int, metavar="N",
                           help=f"size of the route set for the official denominator (Bench2Drive: {OFFICIAL_ROUTE_COUNT}); "
                                "default: the routes evaluated")
    parser.add_argument("--junction-table", metavar="FILE.json",
                        help="route id -> junction_completion (precomputed with CARLA's map): "
                             "applies Bench2Drive's Traffic_Signs junction credit instead of the strict value")
    parser.add_argument("--metric-dir", metavar="DIR",
                        help="folder of <save_name>/metric_info.json per route, for Driving Smoothness "
                             "(default: the result's folder)")
    parser.add_argument("--ts-version", choices=("0.0.3", "0.0.4"), default="0.0.4",
                        help="junction-credit semantics with --junction-table (default: %(default)s)")


def is_score_report(path) -> bool:
    """Whether ``path`` holds a report this command wrote (``ScoreReport.to_dict()``)."""
    with open(path) as handle:
        data = json.load(handle)
    return isinstance(data, dict) and {"driving_score", "num_routes", "infraction_counts"} <= set(data)


def run(args: argparse.Namespace) -> int:
    from minddrive.utils.io import claim_file

    if args.output:  # checked before scoring: a refused path costs nothing
        claim_file(args.output, "score", is_score_report, overwrite=args.overwrite)
    report = score_path(args.result, expected=args.expected, routes_xml=args.routes,
                        junction_table=args.junction_table, traffic_signs_version=args.ts_version,
                        metric_dir=args.metric_dir)
    for warning in report.warnings:
        print(f"minddrive score: warning: {warning}", file=sys.stderr)
    if args.output:
        write_json(args.output, report.to_dict())
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report, title=args.result))
    return 0


def format_report(report: ScoreReport, title: str = "") -> str:
    """The human-readable table: both denominators, infractions per km, abilities."""
    r = report
    evaluated = f"over {r.num_routes} evaluated routes"
    if r.num_routes_expected != r.num_routes:
        official_ds = f"; {r.driving_score:.2f} over {r.num_routes_expected} expected ({r.missing_routes} missing count as 0)"
        official_sr = f"; {r.success_rate:.2f} over {r.num_routes_expected} expected"
        official_rc = f"; {r.route_completion:.2f} over {r.num_routes_expected} expected"
    else:
        official_ds = official_sr = official_rc = ""
    efficiency = ("n/a (no min-speed checkpoints)" if r.efficiency is None
                  else f"{r.efficiency:.2f} (mean over {r.efficiency_routes} routes with min-speed checkpoints)")
    smoothness = ("n/a (no metric_info.json)" if r.smoothness is None
                  else f"{r.smoothness:.2f} (mean over {r.smoothness_routes} routes' metric_info.json)")
    penalty = "n/a" if r.infraction_penalty_evaluated is None else f"{r.infraction_penalty_evaluated:.4f}"
    lines = [
        f"Bench2Drive closed-loop score{': ' + title if title else ''}",
        f"  Driving Score      {r.driving_score_evaluated:6.2f} {evaluated}{official_ds}",
        f"  Success Rate       {r.success_rate_evaluated:6.2f} {evaluated}{official_sr}",
        f"  Route completion   {r.route_completion_evaluated:6.2f} {evaluated}{official_rc}",
        f"  Infraction penalty  {penalty} (mean over evaluated routes)",
        f"  Driving Efficiency  {efficiency}",
        f"  Driving Smoothness  {smoothness}",
        "  Status              " + ", ".join(f"{status} {count}" for status, count in r.status_counts.items()),
    ]
    if r.missing_route_ids:
        shown = ", ".join(r.missing_route_ids[:10]) + (" ..." if len(r.missing_route_ids) > 10 else "")
        lines.append(f"  Missing routes      {shown}")
    lines += ["", f"  {f'Infractions (km driven {r.km_driven:.3f})':<40}{'per km':>9}{'':3}{'count':>7}"]
    for key in INFRACTION_KEYS:
        unit = " km" if key == "outside_route_lanes" else "   "
        lines.append(f"    {key:<38} {r.infractions_per_km[key]:8.3f}{unit} {r.infraction_counts[key]:6d}")
    lines += ["", f"  {'Ability':<32}{'SR %':>7}  success/routes"]
    for name in ABILITY_NAMES:
        label = name + ("*" if name == "Traffic_Signs" and r.traffic_signs_strict else "")
        value = "   n/a" if r.abilities[name] is None else f"{r.abilities[name]:6.2f}"
        successes, routes = r.ability_counts[name]
        lines.append(f"    {label:<30} {value}  {successes:>4}/{routes}")
    mean = "   n/a" if r.abilities_mean is None else f"{r.abilities_mean:6.2f}"
    lines.append(f"    {'Mean':<30} {mean}")
    if r.traffic_signs_version:
        lines.append(f"  Traffic_Signs with junction credit, Bench2Drive v{r.traffic_signs_version} semantics")
    if r.traffic_signs_strict:
        lines.append("  * strict: no junction credit (Bench2Drive's needs the CARLA map), so a lower bound of theirs")
    return "\n".join(lines)
