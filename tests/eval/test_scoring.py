"""Bench2Drive scorer: published numbers on real result files, and every rule on hand-made records."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from minddrive.cli import main
from minddrive.constants import INFRACTION_KEYS, PENALTY_COEFFICIENTS
from minddrive.errors import UserError
from minddrive.eval.scoring import (load_records, read_route_types, recompute_route_scores, route_efficiency,
                                    route_succeeded, score_path, score_records, validate_records)

RELEASE_FILES = ("minddrive.json", "minddrive_3B.json")  # upstream MindDrive's own Bench2Drive results
CHECKPOINTS = ("checkpoint_route2201.json", "checkpoint_route24041.json", "checkpoint_3routes.json")


def make_record(route: int, scenario: str = "Accident_1", status: str = "Completed", score_route: float = 100.0,
                length: float = 1000.0, **infractions: list[str]) -> dict:
    """A leaderboard RouteRecord whose scores follow from its infraction lists."""
    record = {
        "route_id": f"RouteScenario_{route}_rep0", "scenario_name": scenario, "weather_id": "0",
        "save_name": f"RouteScenario_{route}_rep0_Town12_{scenario}", "status": status,
        "num_infractions": 999,  # deliberately wrong: the scorer must never read it
        "infractions": {key: list(infractions.get(key, [])) for key in INFRACTION_KEYS},
        "scores": {"score_route": score_route},
        "meta": {"route_length": length, "duration_game": 60.0, "duration_system": 120.0},
        "town_name": "Town12",
    }
    record["scores"] = recompute_route_scores(record)
    return record


def outside_lanes(metres: float, percent: float) -> str:
    return f"Agent went outside its route lanes for about {metres} meters ({percent}% of the completed route)"


def min_speed(percent: float) -> str:
    return f"Average speed is {percent}% of the surrounding traffic's one"


COLLISION = "Agent collided against object with type=vehicle.audi.a2 and id=42 at (x=1.0, y=2.0, z=0.0)"


# ----------------------------------------------------------------------------- real result files
def test_minddrive_05b_both_denominators(release_dir):
    evaluated = score_path(release_dir / "minddrive.json")
    assert (evaluated.num_routes, evaluated.num_routes_expected, evaluated.missing_routes) == (216, 216, 0)
    assert round(evaluated.driving_score, 2) == 78.04 and round(evaluated.success_rate, 2) == 55.09
    official = score_path(release_dir / "minddrive.json", expected=220)
    assert (official.num_routes_expected, official.missing_routes) == (220, 4)
    assert round(official.driving_score, 2) == 76.62 and round(official.success_rate, 2) == 54.09
    assert round(official.driving_score_evaluated, 2) == 78.04 and round(official.success_rate_evaluated, 2) == 55.09


def test_minddrive_3b_matches_its_published_table(release_dir):
    # Upstream's README: DS 80.59, SR 58.26 over the 218 routes the file holds (DS truncated, not rounded).
    report = score_path(release_dir / "minddrive_3B.json", expected=220)
    assert (report.num_routes, report.missing_routes) == (218, 2)
    assert math.floor(report.driving_score_evaluated * 100) / 100 == 80.59
    assert round(report.success_rate_evaluated, 2) == 58.26
    assert round(report.driving_score, 2) == 79.86 and round(report.success_rate, 2) == 57.73
    # Missing routes leave the ability denominators: 2 of 220 routes are absent.
    assert sum(routes for _, routes in report.ability_counts.values()) < 45 + 80 + 60 + 10 + 95
    assert report.traffic_signs_strict is True


@pytest.mark.parametrize("name", RELEASE_FILES)
def test_stored_driving_score_equals_one_of_the_two_denominators(release_dir, name):
    stored = json.loads((release_dir / name).read_text())
    report = score_path(release_dir / name, expected=220)
    assert stored["eval num"] == report.num_routes
    assert min(abs(stored["driving score"] - c) for c in (report.driving_score, report.driving_score_evaluated)) < 1e-6


@pytest.mark.parametrize("name", RELEASE_FILES + CHECKPOINTS)
def test_real_records_reproduce_leaderboard_scores(release_dir, checkpoints_dir, name):
    records = load_records((release_dir if name in RELEASE_FILES else checkpoints_dir) / name)
    for record in records:
        recomputed = recompute_route_scores(record)
        tolerance = 5e-5 if record["infractions"]["outside_route_lanes"] else 1e-6
        assert abs(recomputed["score_penalty"] - record["scores"]["score_penalty"]) <= tolerance, record["route_id"]
        assert abs(record["scores"]["score_route"] * record["scores"]["score_penalty"]
                   - record["scores"]["score_composed"]) <= 5e-5, record["route_id"]


def test_raw_checkpoints_merge_as_a_folder(checkpoints_dir, tmp_path):
    for name in ("checkpoint_route2201.json", "checkpoint_route24041.json"):
        shutil.copy(checkpoints_dir / name, tmp_path / name)
    # A merged output in the folder is ignored, as merge_route_json.py does.
    (tmp_path / "merged.json").write_text('{"_checkpoint": {"records": [{"route_id": "x"}]}}')
    records = load_records(tmp_path)
    assert sorted(r["route_id"] for r in records) == ["RouteScenario_2201_rep0", "RouteScenario_24041_rep0"]
    assert all("index" not in r for r in records)
    report = score_records(records)
    assert report.num_routes == 2 and report.driving_score == pytest.approx((39.9042 + 49.13) / 2)
    assert report.success_rate == 0.0  # 2201 has a collision and a red light; 24041 got blocked


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_infractions_per_km_match_the_leaderboard_global_record(checkpoints_dir, name):
    global_record = json.loads((checkpoints_dir / name).read_text())["_checkpoint"]["global_record"]
    report = score_path(checkpoints_dir / name)
    assert report.infractions_per_km == global_record["infractions"]
    assert report.driving_score == pytest.approx(global_record["scores_mean"]["score_composed"], abs=1e-6)


def test_leaderboard_statuses_decide_success(checkpoints_dir):
    report = score_path(checkpoints_dir / "checkpoint_3routes.json")
    # 1790 completes with min-speed checks only; 1795 timed out; 1801 completes with penalties.
    assert report.successful_route_ids == ["RouteScenario_1790_rep0"]
    assert report.infraction_counts["route_timeout"] == 1 and report.infraction_counts["collisions_layout"] == 2
    assert report.success_rate == pytest.approx(100 / 3)


# ------------------------------------------------------------------------------- per-route rules
@pytest.mark.parametrize("kind", sorted(PENALTY_COEFFICIENTS))
def test_each_penalised_infraction_multiplies_its_coefficient_and_fails_the_route(kind):
    record = make_record(1, **{kind: ["event one", "event two"]})
    assert record["scores"]["score_penalty"] == pytest.approx(PENALTY_COEFFICIENTS[kind] ** 2, abs=1e-6)
    assert record["scores"]["score_composed"] == pytest.approx(100 * PENALTY_COEFFICIENTS[kind] ** 2, abs=1e-4)
    assert not route_succeeded(record)


def test_known_coefficients():
    record = make_record(1, collisions_pedestrian=[COLLISION], collisions_vehicle=[COLLISION],
                         collisions_layout=[COLLISION], red_light=["r"], stop_infraction=["s"])
    assert record["scores"]["score_penalty"] == pytest.approx(0.5 * 0.6 * 0.65 * 0.7 * 0.8, abs=1e-6)


def test_outside_route_lanes_is_a_percentage_penalty():
    record = make_record(1, score_route=80.0, outside_route_lanes=[outside_lanes(12.5, 25.0)])
    assert record["scores"]["score_penalty"] == pytest.approx(0.75)
    assert record["scores"]["score_composed"] == pytest.approx(60.0)
    assert not route_succeeded(record)
    report = score_records([record])
    assert report.infractions_per_km["outside_route_lanes"] == pytest.approx(0.013)  # km, not per km
    assert report.infraction_counts["outside_route_lanes"] == 1


@pytest.mark.parametrize("kind", ["route_dev", "vehicle_blocked", "route_timeout"])
def test_terminating_events_fail_without_a_penalty(kind):
    record = make_record(1, status="Failed - Agent got blocked", score_route=40.0, **{kind: ["ended"]})
    assert record["scores"]["score_penalty"] == 1.0 and record["scores"]["score_composed"] == 40.0
    assert not route_succeeded(record)
    # Even a 'Completed' status does not make a route with such an event a success.
    assert not route_succeeded({**record, "status": "Completed"})


def test_min_speed_neither_penalises_nor_fails():
    record = make_record(1, min_speed_infractions=[min_speed(45.5), min_speed(80)])
    assert record["scores"]["score_penalty"] == 1.0 and route_succeeded(record)
    assert route_succeeded({**record, "status": "Perfect"})
    assert not route_succeeded({**record, "status": "Failed - TickRuntime"})


def test_efficiency_drops_values_over_1000_and_routes_without_checks():
    assert route_efficiency(make_record(1, min_speed_infractions=[min_speed(50), min_speed(150.5), min_speed(2000)])) \
        == pytest.approx(100.25)
    assert route_efficiency(make_record(2)) is None
    assert route_efficiency(make_record(3, min_speed_infractions=[min_speed(1500)])) is None  # upstream: ZeroDivision
    report = score_records([make_record(1, min_speed_infractions=[min_speed(50), min_speed(150.5)]),
                            make_record(2), make_record(3, min_speed_infractions=[min_speed(100)])])
    assert report.efficiency == pytest.approx((100.25 + 100) / 2) and report.efficiency_routes == 2


# ------------------------------------------------------------------------------------ aggregates
def test_infraction_rates_use_completed_distance():
    records = [make_record(1, length=2000.0, score_route=50.0, collisions_vehicle=[COLLISION] * 2),
               make_record(2, length=1000.0, red_light=["r"])]
    report = score_records(records)
    assert report.km_driven == pytest.approx(2.0)
    assert report.infractions_per_km["collisions_vehicle"] == 1.0
    assert report.infractions_per_km["red_light"] == 0.5
    assert score_records([make_record(1, score_route=0.0, red_light=["r"])]).km_driven == 0.001  # floor


def test_driving_score_and_success_rate_with_missing_routes():
    records = [make_record(1), make_record(2, collisions_vehicle=[COLLISION]), make_record(3, score_route=50.0)]
    # composed 100, 60, 50. Routes 1 and 3 succeed: the rule reads status and infraction lists only, as
    # upstream does (a real 'Completed' route has score_route 100; this one isolates the rule).
    report = score_records(records, expected=5)
    assert report.driving_score_evaluated == pytest.approx(70.0) and report.driving_score == pytest.approx(42.0)
    assert report.success_rate_evaluated == pytest.approx(200 / 3) and report.success_rate == pytest.approx(40.0)
    assert report.route_completion == pytest.approx(50.0) and report.missing_routes == 2
    assert report.successful_route_ids == ["RouteScenario_1_rep0", "RouteScenario_3_rep0"]
    with pytest.raises(UserError, match="smaller than the 3 routes"):
        score_records(records, expected=2)


def test_abilities_count_a_route_in_every_ability_of_its_type():
    records = [make_record(1, "PedestrianCrossing_1"),                         # Emergency_Brake + Traffic_Signs
               make_record(2, "PedestrianCrossing_2", red_light=["r"]),
               make_record(3, "Accident_3"),                                   # Overtaking
               make_record(4, "YieldToEmergencyVehicle_1", yield_emergency_vehicle_infractions=["y"])]
    report = score_records(records, expected=220)
    assert report.ability_counts == {"Overtaking": [1, 1], "Merging": [0, 0], "Emergency_Brake": [1, 2],
                                     "Give_Way": [0, 1], "Traffic_Signs": [1, 2]}
    assert report.abilities == {"Overtaking": 100.0, "Merging": None, "Emergency_Brake": 50.0,
                                "Give_Way": 0.0, "Traffic_Signs": 50.0}
    assert report.abilities_mean is None


TWO_POINTS = '<waypoints><position x="0" y="0" z="0"/><position x="10" y="0" z="0"/></waypoints>'
ROUTES_XML = f"""<routes>
  <route id="11" town="Town12">{TWO_POINTS}<scenarios>
    <scenario name="Renamed_1" type="HighwayCutIn"/><scenario name="x" type="Accident"/></scenarios></route>
  <route id="12" town="Town12">{TWO_POINTS}<scenarios>
    <scenario name="InvadingTurn_1" type="InvadingTurn"/></scenarios></route>
  <route id="13" town="Town05">{TWO_POINTS}<scenarios><scenario name="ControlLoss_1" type="ControlLoss"/></scenarios></route>
</routes>"""


def test_route_file_sets_the_route_set_and_types(tmp_path):
    xml = tmp_path / "routes.xml"
    xml.write_text(ROUTES_XML)
    assert read_route_types(xml) == {"11": "HighwayCutIn", "12": "InvadingTurn", "13": "ControlLoss"}
    records = [make_record(11, "Renamed_1"), make_record(12, "InvadingTurn_1", red_light=["r"]), make_record(99)]
    report = score_records(records, route_types=read_route_types(xml))
    assert (report.num_routes, report.num_routes_expected, report.missing_route_ids) == (2, 3, ["13"])
    assert report.ability_counts["Merging"] == [1, 1]  # type from the XML's first scenario, not the record name
    assert report.ability_counts["Overtaking"] == [0, 0] and report.ability_counts["Emergency_Brake"] == [0, 0]
    assert report.driving_score == pytest.approx((100 + 70) / 3)
    assert report.warnings == ["1 records of routes not in the route file skipped (RouteScenario_99_rep0)"]


def test_real_route_file_restricts_scoring_to_its_routes(release_dir):
    xml = release_dir / "rollout_routes.xml"
    types = read_route_types(xml)
    full = load_records(release_dir / "minddrive.json")
    report = score_path(release_dir / "minddrive.json", routes_xml=xml)
    inside = [r for r in full if r["route_id"].split("_")[1] in types]
    assert report.num_routes_expected == len(types) == 44
    assert report.num_routes == len(inside) and report.num_routes + report.missing_routes == 44
    assert report.driving_score == pytest.approx(sum(r["scores"]["score_composed"] for r in inside) / 44)
    assert report.warnings[0].startswith(f"{len(full) - len(inside)} records of routes not in the route file")
    assert sum(routes for _, routes in report.ability_counts.values()) >= report.num_routes


def test_report_json_has_the_documented_keys(tmp_path, capsys):
    result = tmp_path / "merged.json"
    result.write_text(json.dumps({"_checkpoint": {"records": [make_record(1), make_record(2, red_light=["r"])]}}))
    assert main(["score", str(result), "--json", "--expected", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("driving_score", "success_rate", "driving_score_evaluated", "success_rate_evaluated", "num_routes",
                "num_routes_expected", "missing_routes", "efficiency", "abilities", "traffic_signs_strict"):
        assert key in data
    assert (data["success_rate"], data["success_rate_evaluated"], data["missing_routes"]) == (25.0, 50.0, 2)
    assert set(data["abilities"]) == {"Merging", "Overtaking", "Emergency_Brake", "Give_Way", "Traffic_Signs"}


def test_human_table_shows_both_denominators(release_dir, capsys):
    assert main(["score", str(release_dir / "minddrive.json"), "--expected", "220"]) == 0
    out = capsys.readouterr().out
    assert "78.04 over 216 evaluated routes; 76.62 over 220 expected (4 missing count as 0)" in out
    assert "55.09 over 216 evaluated routes; 54.09 over 220 expected" in out
    assert "Traffic_Signs*" in out and "strict" in out


# ---------------------------------------------------------------------------- validation, errors
def test_records_missing_keys_are_skipped_with_a_warning_naming_route_and_key():
    bad = make_record(2)
    del bad["scores"]["score_composed"]
    no_list = make_record(3)
    del no_list["infractions"]["red_light"]
    kept, warnings = validate_records([make_record(1), bad, no_list, "junk"])
    assert [r["route_id"] for r in kept] == ["RouteScenario_1_rep0"]
    assert warnings[0] == "RouteScenario_2_rep0: missing key 'scores.score_composed'; skipped"
    assert "RouteScenario_3_rep0" in warnings[1] and "infractions.red_light" in warnings[1]
    assert "record #3" in warnings[2]
    with pytest.raises(UserError, match="no usable route records.*score_composed"):
        score_records([bad])


def test_duplicate_route_ids_keep_the_first():
    first, repeat = make_record(7), make_record(7, collisions_vehicle=[COLLISION])
    report = score_records([first, repeat])
    assert report.num_routes == 1 and report.driving_score == 100.0
    assert report.warnings == ["RouteScenario_7_rep0: duplicate route_id (record #1); kept the first"]


def test_unreadable_outside_lanes_message_is_skipped():
    record = make_record(1)
    record["infractions"]["outside_route_lanes"] = ["went somewhere"]
    _, warnings = validate_records([record])
    assert "unreadable outside_route_lanes" in warnings[0]


def test_malformed_inputs_are_one_line_user_errors(tmp_path):
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps({"_checkpoint": {"records": [make_record(1)]}})[:200])
    with pytest.raises(UserError, match=r"truncated.json: malformed JSON at line 1"):
        load_records(truncated)
    wrong_shape = tmp_path / "other.json"
    for text in ('{"records": []}', '{"_checkpoint": []}', '[1, 2]'):
        wrong_shape.write_text(text)
        with pytest.raises(UserError, match="_checkpoint.records"):
            load_records(wrong_shape)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no result"):
        load_records(empty)
    bad_xml = tmp_path / "routes.xml"
    bad_xml.write_text("<routes><route id='1'>")
    with pytest.raises(UserError, match="malformed route XML"):
        read_route_types(bad_xml)
    for error in (truncated, wrong_shape, empty, bad_xml):
        with pytest.raises(UserError) as info:
            score_path(error) if error is not bad_xml else score_path(wrong_shape, routes_xml=bad_xml)
        assert "\n" not in str(info.value)


def test_report_is_finite_and_serialisable():
    report = score_records([make_record(1, "Unknown_1")])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["efficiency"] is None and math.isclose(data["infraction_penalty_evaluated"], 1.0)


def test_traffic_signs_junction_credit_in_both_bench2drive_versions(tmp_path, capsys):
    records = [make_record(1, "T_Junction_1", score_route=100.0),                   # success, passes
               make_record(2, "T_Junction_2", score_route=30.0, status="Failed"),   # failed, short of the junction
               make_record(3, "T_Junction_3", score_route=60.0, status="Failed"),   # failed, passes
               make_record(4, "T_Junction_4", red_light=["r"]),                     # failed, ran the light
               make_record(5, "Accident_1")]                                        # not a Traffic_Signs route
    table = {"1": 0.5, "2": 0.5, "3": 0.5, "4": 0.5}
    strict = score_records(records)
    assert strict.ability_counts["Traffic_Signs"] == [1, 4] and strict.traffic_signs_strict
    v4 = score_records(records, junction_completion=table)
    assert v4.ability_counts["Traffic_Signs"] == [2, 4] and v4.abilities["Traffic_Signs"] == 50.0
    assert not v4.traffic_signs_strict and v4.traffic_signs_version == "0.0.4"
    v3 = score_records(records, junction_completion=table, traffic_signs_version="0.0.3")
    assert v3.ability_counts["Traffic_Signs"] == [3, 8] and v3.abilities["Traffic_Signs"] == 37.5
    assert v3.ability_counts["Overtaking"] == [1, 1]  # other abilities untouched
    with pytest.raises(UserError, match="no junction_completion for Traffic_Signs route RouteScenario_4_rep0"):
        score_records(records, junction_completion={"1": 0.5, "2": 0.5, "3": 0.5})
    result, junctions = tmp_path / "merged.json", tmp_path / "junctions.json"
    result.write_text(json.dumps({"_checkpoint": {"records": records}}))
    junctions.write_text(json.dumps(table))
    assert main(["score", str(result), "--junction-table", str(junctions), "--ts-version", "0.0.3"]) == 0
    out = capsys.readouterr().out
    assert "Traffic_Signs*" not in out and "v0.0.3 semantics" in out
