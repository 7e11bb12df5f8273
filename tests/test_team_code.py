"""The Bench2Drive leaderboard agent: sensor rig, config parsing, GNSS pose and one run_step without a server."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "team_code"))
import minddrive_b2d_agent as agent_module  # noqa: E402

from minddrive.constants import ROAD_OPTION  # noqa: E402
from minddrive.errors import UserError  # noqa: E402
from minddrive.interfaces import ActOutput  # noqa: E402

RIG = {  # BENCH2DRIVE.md §1.8: id -> (x, y, z, yaw, fov)
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


class StraightPolicy:
    """Plans 2 m/s straight ahead; counts calls."""

    calls = 0

    def preprocess(self, obs_list):
        return obs_list

    def act(self, batch, sample=False, temperature=1.0, decision=None):
        StraightPolicy.calls += 1
        t = torch.arange(1, 7, dtype=torch.float32) * 1.0
        return ActOutput(decision=torch.zeros(1, dtype=torch.int64), log_probs=torch.zeros(1, 7), value=torch.zeros(1),
                         path=torch.stack([torch.arange(1, 11) * 2.0, torch.zeros(10)], -1)[None].float(),
                         speed_waypoints=torch.stack([t, torch.zeros(6)], -1)[None])


class RecordingController:
    def __init__(self):
        self.seen = []

    def step(self, waypoints, path, ego_state, dt):
        self.seen.append((np.asarray(waypoints).copy(), dt))
        return 0.0, 0.5, 0.0


@pytest.mark.skipif(importlib.util.find_spec("carla") is None, reason="carla wheel not installed (VehicleControl)")
def test_run_step_plans_every_n_ticks_and_returns_vehicle_control(tmp_path):
    cfg = tmp_path / "agent_cfg.py"
    cfg.write_text("agent = dict(decision_interval=10, tick_dt=0.05, image_size=(45, 80))\n")
    agent = agent_module.MindDriveAgent("localhost", 2000)
    agent.load_policy = lambda ckpt: StraightPolicy()
    controller = RecordingController()
    agent.build_controller = lambda: controller
    agent.setup(f"{cfg}+unused_ckpt+RouteScenario_1_rep0_Town01")
    assert agent.save_name == "RouteScenario_1_rep0_Town01"
    lat_ref = lon_ref = 0.0
    plan_world = [(SimpleNamespace(location=SimpleNamespace(x=float(i), y=0.0, z=0.0)), ROAD_OPTION["LANEFOLLOW"])
                  for i in range(100)]
    plan_gps = [({"lat": leaderboard_location_to_gps(lat_ref, lon_ref, float(i), 0.0)[0],
                  "lon": leaderboard_location_to_gps(lat_ref, lon_ref, float(i), 0.0)[1], "z": 0.0},
                 ROAD_OPTION["LANEFOLLOW"]) for i in range(100)]
    agent.set_global_plan(plan_gps, plan_world)
    image = np.zeros((90, 160, 4), np.uint8)
    StraightPolicy.calls = 0
    for tick in range(12):
        x = 0.1 * tick                                   # driving east (yaw 0 = compass pi/2) at 2 m/s
        lat, lon = leaderboard_location_to_gps(lat_ref, lon_ref, x, 0.0)
        data = {name: (tick, image) for name in RIG}
        data.update(GPS=(tick, np.array([lat, lon, 0.0])), SPEED=(tick, {"speed": 2.0}),
                    IMU=(tick, np.array([0.0, 0.0, 9.8, 0.0, 0.0, 0.0, math.pi / 2])))
        control = agent.run_step(data, timestamp=tick * 0.05)
    import carla

    assert isinstance(control, carla.VehicleControl) and control.throttle == pytest.approx(0.5)
    assert StraightPolicy.calls == 2                     # ticks 0 and 10
    # tick 9: 0.45 s after the plan and 0.9 m further -> the held first waypoint is 0.95 s in: 1.9 m - 0.9 m ahead
    waypoints_tick9, dt = controller.seen[9]
    assert dt == 0.05 and waypoints_tick9[0] == pytest.approx([1.0, 0.0], abs=0.05)
    agent.destroy()
    assert agent.policy is None


def test_load_policy_gives_a_policy_with_act_and_the_configured_runtime(tmp_path):
    from minddrive.config import load_config
    from minddrive.models.policy import MindDrivePolicy
    from minddrive.rl.workers import load_policy, save_policy

    cfg_path = REPO / "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"
    cfg = load_config(cfg_path)
    save_policy(load_policy(cfg, None), tmp_path / "ckpt", cfg, meta=dict(stage="test"))
    agent = agent_module.MindDriveAgent("localhost", 2000)
    agent.cfg = load_config(cfg_path, {"agent.policy": dict(cuda_graphs=True, merge_adapters=True)})
    policy = agent.load_policy(str(tmp_path / "ckpt"))
    assert isinstance(policy, MindDrivePolicy) and callable(policy.act) and callable(policy.preprocess)
    assert policy.model.scene_graphs is not None and not policy.model.training
    assert policy.model.merged_adapters is not None
