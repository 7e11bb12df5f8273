"""The CARLA backend's pure logic without a server, and its one-line error when no server answers."""

from __future__ import annotations

import importlib.util
import math
import socket

import numpy as np
import pytest

from minddrive.constants import ROAD_OPTION
from minddrive.errors import UserError
from minddrive.sim.base import NUM_ROUTE_POINTS
from minddrive.sim.carla.criteria import Criteria, build_route_record, collision_key
from minddrive.sim.carla.observation import bgra_to_rgb, build_observation, ego_state_vector
from minddrive.sim.carla.route import RouteTracker, densify_route, straight_tracer, to_ego_frame
from minddrive.sim.routes import RouteSpec, ScenarioSpec

L_ROUTE = np.array([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0], [50.0, 50.0, 0.0]])  # east 50 m, then right turn south 50 m


def turning_tracer(a, b):
    """Straight 1 m hops; the second leg (heading +y, a right turn in CARLA's frame) is tagged RIGHT."""
    option = ROAD_OPTION["RIGHT"] if b[1] > a[1] else ROAD_OPTION["LANEFOLLOW"]
    return [(xyz, option) for xyz, _ in straight_tracer(1.0)(a, b)]


def test_densify_concatenates_segments_at_one_metre():
    route = densify_route(L_ROUTE, turning_tracer)
    assert len(route.points) == 101                    # 51 + 51 points, the shared corner once
    assert route.length == pytest.approx(100.0)
    assert np.allclose(np.diff(route.cumulative), 1.0)
    assert route.options[10] == ROAD_OPTION["LANEFOLLOW"] and route.options[60] == ROAD_OPTION["RIGHT"]


def test_tracker_completion_command_and_target():
    tracker = RouteTracker(densify_route(L_ROUTE, turning_tracer))
    tracker.update(10.2, 0.3)
    assert tracker.index == 10
    assert tracker.completion(10.2, 0.3) == pytest.approx(10.0)
    assert tracker.road_option() == ROAD_OPTION["LANEFOLLOW"]        # turn is 40 m away (> 15 m lookahead)
    tracker.update(40.0, 0.0)
    assert tracker.road_option() == ROAD_OPTION["RIGHT"]             # within 15 m of the corner
    # Target points: every 30 m, at the command change (the turn starts at 51 m) and at the end.
    np.testing.assert_allclose(tracker.node_distances, [30, 51, 60, 90, 100])
    np.testing.assert_allclose(tracker.target_point(), [50.0, 1.0])       # first node > 4 m past 40 m
    np.testing.assert_allclose(tracker.nodes_ahead(), [[50, 1], [50, 10], [50, 40], [50, 50]])
    # the projection never jumps backwards
    tracker.update(0.0, 0.0)
    assert tracker.index == 40
    for y in range(0, 51, 5):
        tracker.update(50.0, float(y))
    assert tracker.completion(50.0, 50.0) == 100.0
    assert tracker.distance_to_route(80.0, 50.0) == pytest.approx(30.0)


def test_ego_frame_is_x_forward_y_right():
    # ego at (10, 5) heading +y (yaw 90 deg, CARLA clockwise): a point further +y is straight ahead,
    # a point at -x is on the ego's right (left-handed frame: right of +y is -x)
    pts = to_ego_frame(np.array([[10.0, 8.0], [7.0, 5.0]]), 10.0, 5.0, math.pi / 2)
    np.testing.assert_allclose(pts, [[3.0, 0.0], [0.0, 3.0]], atol=1e-9)


def test_observation_matches_the_env_contract():
    tracker = RouteTracker(densify_route(L_ROUTE, turning_tracer))
    tracker.update(40.0, 0.0)
    state = ego_state_vector(5.0, (0.5, -0.1), 0.02, (0.1, 0.4, 0.0), 13.9)
    images = {name: np.full((90, 160, 3), i, np.uint8) for i, name in enumerate(
        ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"))}
    obs = build_observation(tracker, 40.0, 0.0, 0.0, state, 1.25, images)
    assert obs["command"] == 4 and obs["road_option"] == ROAD_OPTION["RIGHT"]    # path "turn right"
    np.testing.assert_allclose(obs["target_point"], [10.0, 1.0])
    assert obs["route"].shape == (NUM_ROUTE_POINTS, 2) and obs["route"].dtype == np.float32
    # The route runs from the ego through the target points: towards (10, 1), then along the turn.
    direction = np.array([10.0, 1.0]) / np.hypot(10.0, 1.0)
    np.testing.assert_allclose(obs["route"][:5], 2.0 * np.arange(1, 6)[:, None] * direction, atol=1e-5)
    np.testing.assert_allclose(obs["route"][5], [10.0, 1.0 + (12.0 - np.hypot(10.0, 1.0))], atol=1e-5)
    assert obs["images"].shape == (6, 90, 160, 3) and obs["images"][3, 0, 0, 0] == 3
    assert obs["cam_intrinsic"].shape == (6, 3, 3) and obs["lidar2img"].shape == (6, 4, 4)
    assert obs["cam_intrinsic"][0, 0, 0] == pytest.approx(160 / (2 * math.tan(math.radians(35))), rel=1e-5)
    assert obs["ego_state"][0] == pytest.approx(5.0) and obs["timestamp"] == 1.25


def test_bgra_buffer_becomes_rgb():
    raw = np.array([[[10, 20, 30, 255], [1, 2, 3, 255]]], np.uint8).tobytes()   # B, G, R, A
    np.testing.assert_array_equal(bgra_to_rgb(raw, 2, 1), [[[30, 20, 10], [3, 2, 1]]])


@pytest.mark.parametrize("type_id,key", [("walker.pedestrian.0001", "collisions_pedestrian"),
                                         ("vehicle.tesla.model3", "collisions_vehicle"),
                                         ("static.prop.trafficcone01", "collisions_layout"),
                                         ("traffic.traffic_light", "collisions_layout"),
                                         ("static.sidewalk", None)])
def test_collision_classification(type_id, key):
    assert collision_key(type_id) == key


def test_criteria_dedupe_penalties_and_termination():
    criteria, fired = Criteria(dt=0.05), []
    criteria.collision(1.0, "vehicle.audi.a2", 7, (0, 0, 0), fired)
    criteria.collision(2.0, "vehicle.audi.a2", 7, (8, 0, 0), fired)     # same actor within 5 s: ignored
    criteria.collision(2.5, "walker.pedestrian.0002", 9, (1, 0, 0), fired)  # within 5 m of last: ignored
    criteria.collision(9.0, "walker.pedestrian.0002", 9, (20, 0, 0), fired)
    criteria.red_light(3, True, True, 4.0, (1, 2, 3), fired)
    criteria.red_light(3, True, True, 4.0, (1, 2, 3), fired)             # once per light
    assert [key for key, _ in fired] == ["collisions_vehicle", "collisions_pedestrian", "red_light"]
    assert criteria.penalty() == pytest.approx(0.6 * 0.5 * 0.7)
    for _ in range(10):
        criteria.progress(5.0, 1.0, outside_lanes=False, step_m=0.25, location=(0, 0, 0), fired=fired)
    criteria.progress(5.0, 1.0, outside_lanes=True, step_m=0.5, location=(0, 0, 0), fired=fired)
    criteria.finalize()
    assert criteria.events["outside_route_lanes"] == [
        "Agent went outside its route lanes for about 0.5 meters (16.67% of the completed route)"]
    assert criteria.penalty() == pytest.approx(0.6 * 0.5 * 0.7 * (1 - 0.5 / 3.0))
    for _ in range(int(60.0 / 0.05) + 1):
        criteria.progress(0.0, 1.0, False, 0.0, (4, 5, 6), fired)
    assert criteria.failure == "Failed - Agent got blocked"
    deviating = Criteria(dt=0.05)
    deviating.progress(5.0, 31.0, False, 0.2, (1, 1, 0), [])
    assert deviating.failure == "Failed - Agent deviated from the route"
    assert deviating.events["route_dev"] == ["Agent deviated from the route at (x=1.0, y=1.0, z=0.0)"]


def test_route_record_is_scored_like_the_leaderboard():
    from minddrive.eval.scoring import recompute_route_scores, score_records

    spec = RouteSpec(id="1711", town="Town12", waypoints=L_ROUTE, index=3,
                     scenarios=[ScenarioSpec("ParkingCutIn_1", "ParkingCutIn", (0, 0, 0, 0))])
    criteria = Criteria(dt=0.05)
    criteria.collision(1.0, "vehicle.audi.a2", 7, (0, 0, 0), [])
    record = build_route_record(spec, criteria, 80.0, "Failed - TickRuntime", 100.0, 200.05, 12.0, weather_id="1")
    assert (record["index"], record["route_id"], record["scenario_name"]) == (3, "RouteScenario_1711_rep0", "ParkingCutIn_1")
    assert record["scores"] == {"score_route": 80.0, "score_penalty": 0.6, "score_composed": 48.0}
    assert record["num_infractions"] == 1
    recomputed = recompute_route_scores(record)
    assert recomputed["score_composed"] == pytest.approx(48.0)
    assert score_records([record]).driving_score == pytest.approx(48.0)
    done = build_route_record(spec, Criteria(dt=0.05), 100.0, None, 100.0, 20.0, 1.0, weather_id=None)
    assert done["status"] == "Perfect" and done["scores"]["score_composed"] == 100.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # released on close: nothing listens there


@pytest.mark.skipif(importlib.util.find_spec("carla") is None, reason="the carla wheel is not installed in .venv")
def test_no_server_is_a_one_line_user_error():
    from minddrive.sim.carla.env import connect

    port = _closed_port()
    with pytest.raises(UserError) as info:
        connect("127.0.0.1", port, timeout=1.0)
    message = str(info.value)
    assert "\n" not in message and f"no CARLA server answered at 127.0.0.1:{port}" in message


def test_missing_carla_package_is_a_one_line_user_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_carla(name, *args, **kwargs):
        if name == "carla":
            raise ImportError("No module named 'carla'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_carla)
    from minddrive.sim.carla.env import import_carla

    with pytest.raises(UserError, match=r"the 'carla' Python package is not installed"):
        import_carla()


def test_env_is_registered_and_reset_needs_a_route():
    from minddrive.registry import ENVS, build
    from minddrive.sim.carla.env import CarlaDriveEnv

    assert ENVS.module_dict["CarlaDriveEnv"] is CarlaDriveEnv   # module_dict: no import of every sim module
    env = build(dict(type="CarlaDriveEnv", port=2000, tm_port=8000), ENVS, "env")
    assert isinstance(env, CarlaDriveEnv)
    assert env.dt == 0.05
    with pytest.raises(UserError, match="options must carry 'route'"):
        env.reset(seed=0, options={})


def test_a_config_builds_the_carla_env_without_importing_its_module_first():
    import subprocess
    import sys

    code = ("from minddrive.registry import ENVS, build; "
            "print(type(build(dict(type='CarlaDriveEnv'), ENVS, 'env')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CarlaDriveEnv"
