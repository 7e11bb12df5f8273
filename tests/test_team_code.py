"""The Bench2Drive leaderboard agent, driven as Bench2Drive's evaluator drives it.

Only what cannot run here is doubled: the CARLA server's world (``tests/doubles/carla_world.py``) and the
leaderboard / scenario_runner classes (``tests/doubles/leaderboard_stack``, checked against the real ones by
``tools/check_leaderboard_double.py``). The agent's policy (the tiny model from a saved checkpoint), PID
controller, route tracking and metric writing run for real.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "team_code"))
sys.path.insert(0, str(REPO / "tests" / "doubles" / "leaderboard_stack"))
sys.path.insert(0, str(REPO / "tests" / "doubles"))
pytest.importorskip("carla", reason="the carla client library (pip install 'minddrive[carla]') is not installed")
import minddrive_b2d_agent as agent_module  # noqa: E402
from carla_world import HeroDouble, WorldDouble, dense_plan  # noqa: E402
from leaderboard.autoagents.autonomous_agent import AutonomousAgent  # noqa: E402
from leaderboard.utils.route_manipulation import downsample_route  # noqa: E402
from leaderboard_run import run_route  # noqa: E402

from minddrive.constants import ROAD_OPTION  # noqa: E402
from minddrive.errors import UserError  # noqa: E402

RIG = {  # docs/bench2drive.md#camera-rig: id -> (x, y, z, yaw, fov)
    "CAM_FRONT": (0.80, 0.00, 1.60, 0, 70), "CAM_FRONT_LEFT": (0.27, -0.55, 1.60, -55, 70),
    "CAM_FRONT_RIGHT": (0.27, 0.55, 1.60, 55, 70), "CAM_BACK": (-2.00, 0.00, 1.60, 180, 110),
    "CAM_BACK_LEFT": (-0.32, -0.55, 1.60, -110, 70), "CAM_BACK_RIGHT": (-0.32, 0.55, 1.60, 110, 70),
}


def test_sensor_list_is_the_bench2drive_rig():
    sensors = agent_module.bench2drive_sensors()
    assert [s["id"] for s in sensors] == list(RIG) + ["IMU", "GPS", "SPEED"]
    for s in sensors[:6]:
        assert s["type"] == "sensor.camera.rgb"
        assert (s["x"], s["y"], s["z"], s["yaw"], s["fov"]) == pytest.approx(RIG[s["id"]])
        assert (s["width"], s["height"], s["roll"], s["pitch"]) == (1600, 900, 0.0, 0.0)
    imu, gps, speed = sensors[6:]
    assert imu["type"] == "sensor.other.imu" and imu["sensor_tick"] == 0.05 and (imu["x"], imu["z"]) == (-1.4, 0.0)
    assert gps["type"] == "sensor.other.gnss" and gps["sensor_tick"] == 0.01 and gps["x"] == -1.4
    assert speed == {"type": "sensor.speedometer", "reading_frequency": 20, "id": "SPEED"}
    assert agent_module.get_entry_point() == "MindDriveAgent"


def test_agent_config_convention():
    assert agent_module.parse_agent_config("cfg.py+ckpts/il") == ("cfg.py", "ckpts/il", None)
    assert agent_module.parse_agent_config("cfg.py+ckpts/il+Route_1+Route_2") == ("cfg.py", "ckpts/il", "Route_2")
    with pytest.raises(UserError, match="expected 'CONFIG\\+CKPT_DIR'"):
        agent_module.parse_agent_config("cfg.py")


def leaderboard_location_to_gps(lat_ref, lon_ref, x, y):
    """The leaderboard's forward mapping (route_manipulation._location_to_gps), for the round trip."""
    scale = math.cos(lat_ref * math.pi / 180.0)
    mx = scale * lon_ref * math.pi * 6378137.0 / 180.0 + x
    my = scale * 6378137.0 * math.log(math.tan((90.0 + lat_ref) * math.pi / 360.0)) - y
    lon = mx * 180.0 / (math.pi * 6378137.0 * scale)
    lat = 360.0 * math.atan(math.exp(my / (6378137.0 * scale))) / math.pi - 90.0
    return lat, lon


def test_gnss_projection_inverts_the_leaderboard_mapping():
    lat_ref, lon_ref = 0.0, 0.0                         # CARLA towns' default geo-reference
    first = (-818.5, 5288.0)
    projection = agent_module.GnssProjection(*leaderboard_location_to_gps(lat_ref, lon_ref, *first), *first)
    for x, y in [first, (-818.6, 5176.0), (-600.0, 5300.0)]:
        assert projection(*leaderboard_location_to_gps(lat_ref, lon_ref, x, y)) == pytest.approx((x, y), abs=0.05)
    assert agent_module.compass_to_yaw(math.pi / 2) == 0.0 and agent_module.compass_to_yaw(float("nan")) == 0.0


def test_jpeg_roundtrip_resizes_and_turns_bgr_into_rgb():
    bgra = np.zeros((90, 160, 4), np.uint8)
    bgra[..., 2] = 200                                   # red in BGRA
    rgb = agent_module.jpeg_roundtrip_rgb(bgra, (45, 80))
    assert rgb.shape == (45, 80, 3) and abs(int(rgb[20, 40, 0]) - 200) <= 6 and rgb[20, 40, 2] < 10


LANEFOLLOW, RIGHT = ROAD_OPTION["LANEFOLLOW"], ROAD_OPTION["RIGHT"]
# 120 m east, a right turn (CARLA's y points south), 80 m south: the leaderboard's 1 m route.
CORNERS, OPTIONS = [(0.0, 0.0), (120.0, 0.0), (120.0, 80.0)], [LANEFOLLOW, RIGHT]
# The thinned plan indices Bench2Drive's own downsample_route(route, 50) gives for it
# (tools/check_leaderboard_double.py compares the double with the real function on this and other routes).
THINNED_IDS = [0, 52, 104, 120, 172, 200]


def test_the_leaderboard_double_thins_the_plan_as_the_real_leaderboard():
    gps_route, route = dense_plan(CORNERS, OPTIONS)
    assert len(route) == 201
    assert downsample_route(route, 50) == THINNED_IDS
    world = WorldDouble(HeroDouble(0.0, 0.0, 0.0, speed_limit_kmh=40.0))
    from srunner.scenariomanager.carla_data_provider import CarlaDataProvider

    CarlaDataProvider.set_world(world)
    agent = AutonomousAgent("localhost", 2000)
    agent.set_global_plan(gps_route, route)
    assert [t.location.x for t, _ in agent._global_plan_world_coord] == [route[i][0].location.x for i in THINNED_IDS]
    assert len(agent._global_plan) == len(THINNED_IDS) and len(agent._plan_gps_HACK) == 201
    assert agent.hero_actor is world.hero


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from minddrive.config import load_config
    from minddrive.rollout.policy import load_policy, save_policy

    cfg_path = REPO / "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"
    ckpt = tmp_path_factory.mktemp("agent") / "ckpt"
    torch.manual_seed(0)
    save_policy(load_policy(load_config(cfg_path), None), ckpt, load_config(cfg_path), meta=dict(stage="test"))
    return cfg_path, ckpt


def agent_config(tmp_path, tiny_checkpoint, camera_size=(160, 90)):
    cfg_path, ckpt = tiny_checkpoint
    cfg = tmp_path / "agent_cfg.py"
    cfg.write_text(f"_base_ = [{str(cfg_path)!r}]\n"
                   f"agent = dict(decision_interval=10, tick_dt=0.05, image_size=(45, 80), camera_size={camera_size})\n")
    return f"{cfg}+{ckpt}+RouteScenario_7_rep0_Town01"


def test_agent_drives_hundreds_of_ticks_through_the_leaderboard_calls(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("SAVE_PATH", str(tmp_path / "save"))
    gps_route, route = dense_plan(CORNERS, OPTIONS)
    world = WorldDouble(HeroDouble(0.0, 0.0, 0.0, speed_limit_kmh=30.0))
    decisions = []
    agent, controls = run_route(agent_module.MindDriveAgent, world, gps_route, route,
                                agent_config(tmp_path, tiny_checkpoint), ticks=300,
                                on_tick=lambda a, w: decisions.append(a.plan_tick))
    assert agent.save_name == "RouteScenario_7_rep0_Town01" and agent.policy is None     # destroyed
    assert len(controls) == 300 and np.isfinite(controls).all()
    assert sorted(set(decisions)) == list(range(0, 300, 10))                  # a plan every 10 ticks
    steer, throttle, brake = np.asarray(controls).T
    assert (np.abs(steer) <= 1).all() and (throttle <= 0.75).all() and ((0 <= brake) & (brake <= 1)).all()
    assert agent.tracker.route.length == pytest.approx(200.0)              # the full 1 m route, not the thinned plan
    # Bench2Drive's efficiency/smoothness tool reads one entry per tick with these six vectors.
    info = json.loads((tmp_path / "save" / "RouteScenario_7_rep0_Town01" / "metric_info.json").read_text())
    assert list(info) == [str(i) for i in range(300)]
    assert set(info["299"]) == {"acceleration", "angular_velocity", "forward_vector", "right_vector", "location",
                                "rotation"}
    assert info["299"]["location"][:2] == pytest.approx([world.hero.x, world.hero.y], abs=1e-3)


def test_agent_runs_on_the_full_bench2drive_rig(tmp_path, tiny_checkpoint):
    gps_route, route = dense_plan(CORNERS, OPTIONS)
    world = WorldDouble(HeroDouble(0.0, 0.0, 0.0, speed_limit_kmh=30.0))
    agent, controls = run_route(agent_module.MindDriveAgent, world, gps_route, route,
                                agent_config(tmp_path, tiny_checkpoint, camera_size=(1600, 900)), ticks=3)
    assert [s["width"] for s in agent.sensors()[:6]] == [1600] * 6 and len(controls) == 3


def observe_as_the_carla_backend(route, x, y, yaw_deg, speed, speed_limit_kmh, control):
    """The observation CarlaDriveEnv builds from the true pose on the leaderboard's 1 m route."""
    from minddrive.sim.carla.observation import build_observation, ego_state_vector
    from minddrive.sim.carla.route import DenseRoute, RouteTracker

    tracker = RouteTracker(DenseRoute(np.array([[t.location.x, t.location.y, 0.0] for t, _ in route]),
                                      np.array([o.value for _, o in route])))
    tracker.update(x, y)
    ego = ego_state_vector(speed, (0.0, 0.0), 0.0, control, speed_limit_kmh / 3.6)
    return build_observation(tracker, x, y, math.radians(yaw_deg), ego, 0.0)


@pytest.mark.parametrize("pose", [(30.0, 0.4, 2.0), (110.0, -0.3, -3.0), (120.5, 30.0, 91.0)])
def test_agent_observation_equals_the_carla_backend_for_the_same_pose(tmp_path, tiny_checkpoint, pose):
    gps_route, route = dense_plan(CORNERS, OPTIONS)
    hero = HeroDouble(*pose, speed_limit_kmh=50.0)
    hero.speed = 6.0
    world = WorldDouble(hero)
    from srunner.scenariomanager.carla_data_provider import CarlaDataProvider

    CarlaDataProvider.set_world(world)
    agent = agent_module.MindDriveAgent("localhost", 2000)
    agent.set_global_plan(gps_route, route)
    agent.setup(agent_config(tmp_path, tiny_checkpoint))
    agent.step = 0
    obs = agent.tick({tag: (0, data) for tag, data in world.readings(agent.sensors()).items()})
    expected = observe_as_the_carla_backend(route, *pose, 6.0, 50.0, agent.last_control)
    assert obs["pose"][:2] == pytest.approx(pose[:2], abs=0.02)          # GNSS 1.4 m behind, moved to the centre
    assert obs["ego_state"][7] == pytest.approx(50.0 / 3.6)               # speed limit, m/s
    assert obs["command"] == expected["command"] and obs["road_option"] == expected["road_option"]
    np.testing.assert_allclose(obs["target_point"], expected["target_point"], atol=0.05)
    np.testing.assert_allclose(obs["route"], expected["route"], atol=0.05)
    np.testing.assert_allclose(obs["ego_state"][[0, 7]], expected["ego_state"][[0, 7]], atol=1e-4)


def test_without_the_full_plan_the_thinned_plan_is_densified(tmp_path, tiny_checkpoint):
    gps_route, route = dense_plan(CORNERS, OPTIONS)
    world = WorldDouble(HeroDouble(20.0, 0.0, 0.0, speed_limit_kmh=50.0))
    from srunner.scenariomanager.carla_data_provider import CarlaDataProvider

    CarlaDataProvider.set_world(world)
    agent = agent_module.MindDriveAgent("localhost", 2000)
    agent.set_global_plan(gps_route, route)
    del agent._plan_gps_HACK                          # the upstream leaderboard keeps only the thinned plan
    agent.setup(agent_config(tmp_path, tiny_checkpoint))
    agent.step = 0
    obs = agent.tick({tag: (0, data) for tag, data in world.readings(agent.sensors()).items()})
    expected = observe_as_the_carla_backend(route, 20.0, 0.0, 0.0, 0.0, 50.0, agent.last_control)
    assert agent.tracker.route.length == pytest.approx(200.0, abs=1.0)
    np.testing.assert_allclose(obs["target_point"], expected["target_point"], atol=0.5)
    assert obs["target_point"][0] > 4.0                                   # not collapsed onto the ego


def test_load_policy_gives_a_policy_with_act_and_the_configured_runtime(tmp_path):
    from minddrive.config import load_config
    from minddrive.models.policy import MindDrivePolicy
    from minddrive.rollout.policy import load_policy, save_policy

    cfg_path = REPO / "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"
    cfg = load_config(cfg_path)
    save_policy(load_policy(cfg, None), tmp_path / "ckpt", cfg, meta=dict(stage="test"))
    agent = agent_module.MindDriveAgent("localhost", 2000)
    agent.cfg = load_config(cfg_path, {"agent.policy": dict(cuda_graphs=True, merge_adapters=True)})
    policy = agent.load_policy(str(tmp_path / "ckpt"))
    assert isinstance(policy, MindDrivePolicy) and callable(policy.act) and callable(policy.preprocess)
    from minddrive.models.acceleration import fast_paths

    assert fast_paths(policy.model).scene_graphs is not None and not policy.model.training
    assert fast_paths(policy.model).merged is not None
