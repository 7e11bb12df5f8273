"""What Bench2Drive's tools/ read, as ``minddrive sim-eval`` writes it, and Driving Smoothness as the tool computes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from minddrive.eval.scoring import load_records, route_smoothness, score_path, score_records
from minddrive.eval.sim_cli import JUNCTION_TABLE, MAPS_DIR, ROUTES_DIR, run_sim_eval
from minddrive.sim.cli import evaluation_routes
from minddrive.sim.metric_info import METRIC_INFO_KEYS, read_metric_info
from minddrive.sim.opendrive import MAPS_SUBDIR
from minddrive.sim.records import RIG_SENSOR_ICONS
from minddrive.sim.routes import parse_routes

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sim_eval_run"


def test_smoothness_and_efficiency_match_the_official_tool_on_the_fixture():
    # efficiency_smoothness_benchmark.py on this folder (merged by merge_route_json.py) printed
    # Driving Efficiency=103.67372222222222, Driving Smoothness=0.5; per route 2/3, 5/6 and 0.0.
    report = score_path(FIXTURE)
    assert report.smoothness == pytest.approx(50.0)
    assert report.smoothness_routes == 3
    assert report.efficiency == pytest.approx(103.67372222222222)
    per_route = {r["route_id"]: route_smoothness(read_metric_info(FIXTURE / r["save_name"] / "metric_info.json"))
                 for r in load_records(FIXTURE)}
    assert per_route == pytest.approx({"RouteScenario_1_rep0": 2 / 3, "RouteScenario_2_rep0": 5 / 6,
                                       "RouteScenario_3_rep0": 0.0})


def _steady(ticks: int, lon_accel: float = 0.0, yaw_rate_deg: float = 0.0) -> dict:
    return {"acceleration": np.tile([lon_accel, 0.0, 0.0], (ticks, 1)), "angular_velocity": np.tile([0, 0, yaw_rate_deg], (ticks, 1)),
            "forward_vector": np.tile([1.0, 0, 0], (ticks, 1)), "right_vector": np.tile([0, 1.0, 0], (ticks, 1)),
            "location": np.zeros((ticks, 3)), "rotation": np.zeros((ticks, 3))}


def test_smoothness_bounds_and_segments():
    assert route_smoothness(_steady(60)) == 1.0                       # three calm segments
    assert route_smoothness(_steady(60, lon_accel=-4.0)) == 1.0       # braking inside -4.05 m/s^2
    assert route_smoothness(_steady(60, lon_accel=-4.1)) == 0.0
    assert route_smoothness(_steady(15, yaw_rate_deg=0.9)) == 1.0     # one short segment, bound 0.95 as the file holds it
    assert route_smoothness(_steady(15, yaw_rate_deg=1.0)) == 0.0
    harsh = _steady(50)
    harsh["acceleration"][25:30, 0] = -8.0                            # in the second full segment only; ticks 40-49 unjudged
    assert route_smoothness(harsh) == pytest.approx(0.5)


def test_smoothness_missing_metric_info_is_left_out_with_a_warning(tmp_path):
    records = load_records(FIXTURE)
    report = score_records(records, metric_dir=tmp_path)
    assert report.smoothness is None and report.smoothness_routes == 0 and not report.warnings
    records[0] = dict(records[0], save_name="gone")
    report = score_records(records, metric_dir=FIXTURE)
    assert report.smoothness == pytest.approx(100 * (5 / 6 + 0.0) / 2) and report.smoothness_routes == 2
    assert any("1 routes without metric_info.json" in w for w in report.warnings)


def test_sim_eval_writes_what_the_tools_read(tmp_path):
    routes = evaluation_routes(5, 1)[1:2]   # a SignalizedJunctionLeftTurn route (Traffic_Signs)
    records, junctions, result_path = run_sim_eval(routes, "constant", tmp_path, "run", progress=False)
    data = json.loads(result_path.read_text())
    record = data["_checkpoint"]["records"][0]
    assert re.fullmatch(r"RouteScenario_2_rep0_EmbeddedTown\d\d_SignalizedJunctionLeftTurn_1_\d+_\d\d_\d\d_\d\d_\d\d_\d\d",
                        record["save_name"])
    assert data["sensors"] == RIG_SENSOR_ICONS and len(data["values"]) == len(data["labels"]) == 15
    assert data["_checkpoint"]["global_record"]["scores_mean"]["score_composed"] == pytest.approx(record["scores"]["score_composed"])
    info = json.loads((tmp_path / record["save_name"] / "metric_info.json").read_text())
    assert len(info) == round(record["meta"]["duration_game"] / 0.1)
    assert list(info["0"]) == list(METRIC_INFO_KEYS)
    spec, = parse_routes(tmp_path / ROUTES_DIR / "run.xml")
    assert spec.id == "2" and spec.scenario_type == "SignalizedJunctionLeftTurn"
    # tick 0 is the state after the first 0.1 s step, a metre at most from the route's first waypoint
    assert 0.0 < np.hypot(*(spec.waypoints[0, :2] - info["0"]["location"][:2])) < 1.0
    table = json.loads((tmp_path / ROUTES_DIR / JUNCTION_TABLE).read_text())
    assert table == junctions and 0.3 < table["2"] < 0.9
    assert (tmp_path / MAPS_DIR / MAPS_SUBDIR / f"{spec.town}.xodr").is_file()


def test_exported_map_loads_in_the_carla_client_with_its_junction(tmp_path):
    carla = pytest.importorskip("carla")
    routes = evaluation_routes(5, 1)[1:2]
    run_sim_eval(routes, "constant", tmp_path, "run", progress=False)
    spec, = parse_routes(tmp_path / ROUTES_DIR / "run.xml")
    carla_map = carla.Map(spec.town, (tmp_path / MAPS_DIR / MAPS_SUBDIR / f"{spec.town}.xodr").read_text())
    assert len(carla_map.get_topology()) == 24          # 4 arms x 2 directions + 16 connectors
    start = carla_map.get_waypoint(carla.Location(float(spec.waypoints[0, 0]), float(spec.waypoints[0, 1]), 0.0))
    assert start.transform.location.distance(carla.Location(float(spec.waypoints[0, 0]), float(spec.waypoints[0, 1]), 0.0)) < 0.5
    assert not start.is_junction
    wp, travelled = start, 0
    while not wp.is_junction and travelled < 300:
        wp, travelled = wp.next(1.0)[0], travelled + 1
    assert wp.is_junction and 20 < travelled < 200
