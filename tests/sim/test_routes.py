"""The leaderboard route XML parser on the real 44-route rollout file, and the Bench2Drive-style splitter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from minddrive.constants import ABILITIES
from minddrive.errors import UserError
from minddrive.sim.routes import chunk_bounds, parse_routes, parse_subset, split_routes

ROLLOUT_XML = Path(__file__).resolve().parents[1] / "fixtures" / "minddrive_release" / "rollout_routes.xml"

EXPECTED_TYPES = {
    "Accident": 2, "AccidentTwoWays": 1, "BlockedIntersection": 1, "ConstructionObstacleTwoWays": 1,
    "EnterActorFlow": 1, "HazardAtSideLane": 3, "HazardAtSideLaneTwoWays": 1, "HighwayExit": 2,
    "InterurbanActorFlow": 3, "InterurbanAdvancedActorFlow": 1, "MergerIntoSlowTraffic": 1,
    "NonSignalizedJunctionLeftTurnEnterFlow": 1, "OppositeVehicleRunningRedLight": 1, "ParkedObstacle": 2,
    "ParkingExit": 2, "PedestrianCrossing": 3, "SequentialLaneChange": 3, "SignalizedJunctionLeftTurn": 3,
    "SignalizedJunctionLeftTurnEnterFlow": 1, "SignalizedJunctionRightTurn": 1, "T_Junction": 2,
    "VanillaNonSignalizedTurn": 2, "VanillaNonSignalizedTurnEncounterStopsign": 1,
    "VanillaSignalizedTurnEncounterRedLight": 2, "VehicleTurningRoutePedestrian": 2, "YieldToEmergencyVehicle": 1,
}


def test_rollout_file_routes_and_scenario_types():
    routes = parse_routes(ROLLOUT_XML)
    assert len(routes) == 44
    assert Counter(r.scenario_type for r in routes) == EXPECTED_TYPES
    assert sum(len(r.waypoints) for r in routes) == 1662          # every <position> of the file
    assert [r.index for r in routes] == list(range(44))
    assert len({r.id for r in routes}) == 44
    # every type belongs to at least one Bench2Drive ability
    known = {t for types in ABILITIES.values() for t in types}
    assert {r.scenario_type for r in routes} <= known


def test_first_route_fields_match_the_xml():
    first = parse_routes(ROLLOUT_XML)[0]
    assert (first.id, first.town, first.name, first.route_id()) == ("1773", "Town12", "RouteScenario_1773",
                                                                    "RouteScenario_1773_rep0")
    np.testing.assert_allclose(first.waypoints[0], [-818.5, 5288.0, 376.3])
    scenario = first.scenarios[0]
    assert (scenario.name, scenario.type) == ("ParkedObstacle_1", "ParkedObstacle")
    assert scenario.trigger_point == pytest.approx((-818.5, 5278.0, 376.3, 269.9))
    assert scenario.param("distance") == "40" and scenario.param("direction") == "right"
    assert len(first.weathers) == 2 and first.weathers[1]["route_percentage"] == 100.0
    assert first.weathers[0]["sun_altitude_angle"] == -90.0
    # the file's keypoints are ~2 m apart on this straight route
    steps = np.linalg.norm(np.diff(first.waypoints[:, :2], axis=0), axis=1)
    assert 1.9 < steps.mean() < 2.1


def test_point_params_keep_all_attributes():
    flow = next(r for r in parse_routes(ROLLOUT_XML) if r.scenario_type == "EnterActorFlow").scenarios[0]
    assert flow.params["start_actor_flow"] == {"x": "913.1", "y": "3715.6", "z": "370.7"}
    assert flow.params["source_dist_interval"] == {"from": "30", "to": "38"}
    assert flow.param("flow_speed") == "17"


def test_subset_selects_ids_and_ranges():
    assert parse_subset("3,5-7, 9") == ["3", "5", "6", "7", "9"]
    ids = [r.id for r in parse_routes(ROLLOUT_XML)]
    picked = parse_routes(ROLLOUT_XML, subset=f"{ids[3]},{ids[0]}")
    assert [r.id for r in picked] == [ids[0], ids[3]]          # document order kept
    with pytest.raises(UserError, match="not in the file"):
        parse_routes(ROLLOUT_XML, subset="999999")


@pytest.mark.parametrize("count,parts,sizes", [(44, 3, [15, 15, 14]), (220, 8, [28] * 4 + [27] * 4), (5, 5, [1] * 5)])
def test_chunk_bounds_balanced_contiguous(count, parts, sizes):
    bounds = chunk_bounds(count, parts)
    assert [b - a for a, b in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(parts - 1))


def test_split_roundtrips_routes(tmp_path):
    paths = split_routes(ROLLOUT_XML, 3, algo="minddrive", planner="traj", out_dir=tmp_path)
    assert [p.name for p in paths] == [f"rollout_routes_{i}_minddrive_traj.xml" for i in range(3)]
    original = parse_routes(ROLLOUT_XML)
    chunks = [parse_routes(p) for p in paths]
    assert [len(c) for c in chunks] == [15, 15, 14]
    flat = [r for c in chunks for r in c]
    assert [r.id for r in flat] == [r.id for r in original]
    for a, b in zip(flat, original):
        np.testing.assert_array_equal(a.waypoints, b.waypoints)
        assert a.scenarios == b.scenarios and a.weathers == b.weathers


def test_bad_files_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="route file not found"):
        parse_routes(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text('<routes><route id="1" town="Town01"><waypoints><position x="1" y="a" z="0"/>'
                   '<position x="1" y="2" z="0"/></waypoints></route></routes>')
    with pytest.raises(UserError, match=r"route '1'.*not a number"):
        parse_routes(bad)
    bad.write_text("<routes><route id='1'")
    with pytest.raises(UserError, match="malformed route XML"):
        parse_routes(bad)
