"""Info index from the hand-made Bench2Drive clip: targets checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minddrive.constants import SPEED_ACTIONS
from minddrive.data import bench2drive as b2d
from minddrive.data.infos import derive_speed_action, load_info_index, parse_meta_action, resample_polyline

TRAIN_CLIP = "v1/HardBreakRoute_Town01_Route30_Weather3"
VAL_CLIP = "v1/ParkingExit_Town12_Route922_Weather12"


def test_split_follows_the_zoo_split_file(b2d_index):
    train, meta = load_info_index(b2d_index / "b2d_infos_train.pkl")
    val, _ = load_info_index(b2d_index / "b2d_infos_val.pkl")
    assert {i["clip"] for i in train} == {TRAIN_CLIP} and len(train) == 16
    assert {i["clip"] for i in val} == {VAL_CLIP} and len(val) == 6
    assert [i["frame"] for i in train] == list(range(16))
    assert meta["skipped"] == []


def test_future_waypoints_by_hand(train_infos):
    # Ego heads south (yaw 90 deg) from (100, 200) at v = 2 + t, drifting west (= ego right) at 0.2 m/s:
    # at t = 0.5 s it moved 2*0.5 + 0.5*0.25 = 1.125 m forward and 0.1 m right.
    frame0 = train_infos[0]
    np.testing.assert_allclose(frame0["ego_fut_traj"][:3], [[1.125, 0.1], [2.5, 0.2], [4.125, 0.3]], atol=1e-5)
    np.testing.assert_array_equal(frame0["ego_fut_mask"], [1, 1, 1, 0, 0, 0])  # clip ends at frame 15
    np.testing.assert_array_equal(frame0["ego_fut_traj"][3:], 0)
    # GT pose from world2ego, not the GNSS x/y (offset +0.8 m in the fixture).
    np.testing.assert_allclose(frame0["ego_pose"], [100.0, 200.0, math.pi / 2], atol=1e-6)


def test_history_path_and_route(train_infos):
    frame5 = train_infos[5]
    # Frame 0 seen from frame 5 (ego at (99.9, 201.125)): 1.125 m behind, 0.1 m to the left.
    np.testing.assert_allclose(frame5["ego_history"][0], [-1.125, -0.1], atol=1e-5)
    np.testing.assert_allclose(frame5["ego_history"][1:], np.repeat([[-1.125, -0.1]], 3, axis=0), atol=1e-5)
    np.testing.assert_array_equal(train_infos[0]["ego_history"], 0)  # clip start: the ego itself
    # Path from frame 0: 4.136 m driven by frame 15 -> two 2 m points valid, along the arc.
    path, mask = train_infos[0]["path_points"], train_infos[0]["path_mask"]
    np.testing.assert_array_equal(mask[:3], [1, 1, 0])
    assert np.linalg.norm(path[0]) == pytest.approx(2.0, abs=0.01)
    assert 0.1 < path[0][1] < 0.2  # drifting right
    # Navigation target (100, 230) is 30 m straight ahead; the route points at it every 2 m.
    np.testing.assert_allclose(train_infos[0]["target_point"], [30.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(train_infos[0]["route"][:3], [[2, 0], [4, 0], [6, 0]], atol=1e-5)


def test_command_state_and_labels(train_infos):
    assert [train_infos[f]["command"] for f in (0, 12, 14)] == [0, 2, 0]  # LANEFOLLOW, LEFT, VOID -> lanefollow
    assert train_infos[12]["road_option"] == 1
    state0, state3 = train_infos[0]["ego_state"], train_infos[3]["ego_state"]
    assert state0[0] == pytest.approx(2.0) and state0[1] == pytest.approx(1.0)
    assert state0[7] == pytest.approx(40 / 3.6, rel=1e-5)  # traffic.speed_limit.40 ahead
    assert state3[0] == pytest.approx(2.3)  # speedometer None (and compass NaN): ego box speed
    # Frame 0's Chat-B2D-plus file says slow down; frame 1 has no meta-action QA, so the speed
    # profile (2 -> 3.5 m/s in 1.5 s, +1 m/s^2) labels it "speed up".
    assert (train_infos[0]["speed_action"], train_infos[0]["label_source"]) == (SPEED_ACTIONS.index("slow down"), "vqa")
    assert (train_infos[1]["speed_action"], train_infos[1]["label_source"]) == (SPEED_ACTIONS.index("speed up"), "derived")
    assert train_infos[0]["vqa_path"].endswith("00000.json") and train_infos[2]["vqa_path"] is None


def test_agent_future_boxes(train_infos):
    boxes, mask = train_infos[0]["agent_boxes"], train_infos[0]["agent_mask"]
    assert boxes.shape == (2, 6, 5)
    # Sorted by distance: the walker (5 m ahead, 5 m right, facing east = -90 deg from the ego heading), then the car.
    np.testing.assert_allclose(boxes[0, 0], [5.0, 5.0, 0.6, 0.6, -math.pi / 2], atol=1e-5)
    np.testing.assert_allclose(boxes[1, :3, 0], [10.5, 11.0, 11.5], atol=1e-5)
    np.testing.assert_allclose(boxes[1, 0, 2:], [4.8, 2.0, 0.0], atol=1e-5)
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0, 0]] * 2)


def test_lidar2img_projects_a_point_ahead_to_the_image_centre(train_infos):
    calib = train_infos[0]
    point = np.array([0.8 + 10.0, 0.0, 1.6, 1.0])  # 10 m in front of CAM_FRONT, at its height
    u, v, d, _ = calib["lidar2img"][0] @ point
    assert (u / d, v / d, d) == pytest.approx((800.0, 450.0, 10.0), abs=1e-3)
    # A point 10 m to the ego's right lands in the front-right camera (yaw 55 deg), not behind it.
    u, v, d, _ = calib["lidar2img"][2] @ np.array([0.27 + 10 * math.cos(math.radians(55)),
                                                    0.55 + 10 * math.sin(math.radians(55)), 1.6, 1.0])
    assert (u / d, v / d, d) == pytest.approx((800.0, 450.0, 10.0), abs=1e-3)


def test_parse_clip_names():
    assert b2d.parse_clip_name("HardBreakRoute_Town01_Route30_Weather3") == b2d.ClipName("HardBreakRoute", "Town01", 30, 3)
    assert b2d.parse_clip_name("v1/VehicleTurningRoutePedestrian_Town15_Route523_Weathe").weather is None
    assert b2d.parse_clip_name("ParkingExit_Town10HD_Route1_Weather0").town == "Town10HD"


@pytest.mark.parametrize("profile, expected", [
    ([0.2, 0.1, 0.0, 0.0], "stop"),
    ([10.0, 8.0, 6.0, 4.0], "slow down rapidly"),   # -4 m/s^2
    ([6.0, 5.5, 5.0, 4.5], "slow down"),            # -1 m/s^2
    ([2.0, 2.5, 3.0, 3.5], "speed up"),             # +1 m/s^2
    ([2.0, 2.1, 2.2, 2.3], "maintain slow speed"),
    ([6.0, 6.1, 6.2, 6.3], "maintain moderate speed"),
    ([12.0, 12.0, 12.0, 12.0], "maintain fast speed"),
])
def test_derived_speed_labels(profile, expected):
    assert SPEED_ACTIONS[derive_speed_action(profile)] == expected


def test_meta_action_parsing_and_resampling():
    assert parse_meta_action("The car should be<slow_down_rapidly><turn_left>.") == (6, 2)
    assert parse_meta_action("The car should be slow down rapidly and change lane right.") == (6, 5)
    assert parse_meta_action("Nothing here.") == (-1, -1)
    assert derive_speed_action([None]) == -1
    points, mask = resample_polyline(np.array([[0, 0], [3, 0], [3, 4]]), 2.0, 4)
    np.testing.assert_allclose(points[:3], [[2, 0], [3, 1], [3, 3]])
    np.testing.assert_array_equal(mask, [1, 1, 1, 0])


def test_road_boundaries_from_the_hd_map(train_infos, b2d_index):
    points, mask = train_infos[0]["map_boundaries"], train_infos[0]["map_mask"]
    valid = points[mask > 0]
    # Solid edges 1.75 m either side of the lane centre; the Broken marking (3.5 m right) is not a boundary.
    np.testing.assert_allclose(np.sort(np.unique(np.round(valid[:, 1], 3))), [-1.75, 1.75])
    assert np.linalg.norm(valid, axis=1).max() <= 30.0 and valid[:, 0].min() < -25 and valid[:, 0].max() > 25
    # Pieces are nearest first and chained without gaps: every 2 m from -28 to 28 on each side.
    assert np.linalg.norm(points[0][mask[0] > 0], axis=1).min() < 2.0
    for side in (-1.75, 1.75):
        xs = np.unique(valid[np.isclose(valid[:, 1], side)][:, 0])
        np.testing.assert_allclose(xs, np.arange(-28.0, 28.1, 2.0))
    val, _ = load_info_index(b2d_index / "b2d_infos_val.pkl")
    assert val[0]["map_boundaries"].shape == (0, 10, 2)  # no Town12 map: no boundaries, not made-up ones


def test_find_clips_skips_partial_writes(tmp_path):
    for name in ("v1/.HardBreakRoute_Town01_Route1_Weather1.partial", "v1/HardBreakRoute_Town01_Route2_Weather1",
                 "flat_Town02_Route3_Weather0", "v1/notaclip"):
        (tmp_path / name / ("anno" if "notaclip" not in name else "camera")).mkdir(parents=True)
    assert b2d.find_clips(tmp_path) == ["flat_Town02_Route3_Weather0", "v1/HardBreakRoute_Town01_Route2_Weather1"]
