"""``minddrive sim-eval``: drive seeded embedded-simulator routes with a built-in policy and score them.

``OUT`` is laid out as a leaderboard run's, so Bench2Drive's ``tools/`` run on it unmodified:

- ``sim_eval_<policy>_seed<seed>.json``: the checkpoint JSON (records, ``global_record``, ``sensors``, ...);
- ``<save_name>/metric_info.json`` per route (``efficiency_smoothness_benchmark.py -m OUT``);
- ``routes/sim_eval_<policy>_seed<seed>.xml``: the routes as a leaderboard route file, each route on its
  own map ``<town>_seed<seed>`` (every embedded route has its own road network);
- ``maps/CarlaUE4/Content/Carla/Maps/OpenDrive/<map>.xodr``: those maps (``CARLA_ROOT=OUT/maps`` for
  ``ability_benchmark.py``);
- ``routes/junction_table.json``: route id -> junction completion, the Traffic_Signs credit ``minddrive
  score --junction-table`` applies (sim-eval's own score applies it).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from minddrive.sim.cli import POLICIES, drive_routes, evaluation_routes
from minddrive.sim.hdmap import map_name
from minddrive.sim.metric_info import write_metric_info
from minddrive.sim.opendrive import junction_completion, route_xml_element, write_route_xml, write_xodr
from minddrive.sim.records import checkpoint, save_name
from minddrive.utils.io import write_json

ROUTES_DIR, MAPS_DIR, JUNCTION_TABLE = "routes", "maps", "junction_table.json"


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--policy", choices=POLICIES, default="expert")
    parser.add_argument("--routes", type=int, default=100, help="number of seeded routes (spread over the five abilities)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the route set")
    parser.add_argument("--out", required=True, help="folder for the result JSON (leaderboard checkpoint format)")
    parser.add_argument("--json", action="store_true", help="print the score as `minddrive score --json` does")


def run_sim_eval(routes: list[dict], policy: str, out: Path, stem: str, progress: bool = True):
    """Drive ``routes`` and write everything under ``out``; returns (records, junction table, result path)."""
    from minddrive.eval.closed_loop import GLOBAL_LABELS, global_record, global_values

    started = datetime.now()
    xml_routes, junctions = [], {}

    def on_route_end(route: dict, env, record: dict) -> None:
        world = env.world
        record["save_name"] = save_name(record["route_id"], record["town_name"], record["scenario_name"],
                                        record["weather_id"], started)
        write_metric_info(out / record["save_name"], env.metric_info())
        network = map_name(world.town, route["seed"])
        write_xodr(out / MAPS_DIR, network, world.network)
        xml_routes.append(route_xml_element(route["id"], network, world.route, record["scenario_name"],
                                            route["scenario_type"], world.weather_id))
        junctions[route["id"]] = round(junction_completion(world.route), 6)

    records = drive_routes(routes, policy, progress=progress, on_route_end=on_route_end)
    write_route_xml(out / ROUTES_DIR / f"{stem}.xml", xml_routes)
    write_json(out / ROUTES_DIR / JUNCTION_TABLE, junctions)
    result = checkpoint(records)
    result["_checkpoint"]["global_record"] = global_record(records, len(records))
    result["values"], result["labels"] = global_values(records, len(records)), list(GLOBAL_LABELS)
    result_path = out / f"{stem}.json"
    write_json(result_path, result)
    return records, junctions, result_path


def run(args: argparse.Namespace) -> int:
    from minddrive.eval.scoring import score_records
    from minddrive.eval.scoring_cli import format_report

    routes = evaluation_routes(args.routes, args.seed)
    out = Path(args.out)
    records, junctions, result_path = run_sim_eval(routes, args.policy, out, f"sim_eval_{args.policy}_seed{args.seed}")
    report = score_records(records, junction_completion=junctions, metric_dir=out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, title=str(result_path)))
    return 0
