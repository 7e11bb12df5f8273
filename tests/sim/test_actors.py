import numpy as np
import pytest

from minddrive.sim import actors as A


def _ego(speed=0.0):
    z = np.zeros(1)
    return z.copy(), z.copy(), z.copy(), np.full(1, speed), z.copy()


def test_bicycle_model_accelerates_straight_and_turns_right_with_positive_steer():
    x, y, yaw, v, st = _ego()
    for _ in range(30):  # 3 s full throttle
        x, y, yaw, v, st, acc, _ = A.ego_dynamics(x, y, yaw, v, st, np.array([[0.0, 1.0, 0.0]]), 0.1)
    assert 8.0 < v[0] < 12.5 and abs(y[0]) < 1e-9 and x[0] > 10
    for _ in range(10):
        x, y, yaw, v, st, acc, _ = A.ego_dynamics(x, y, yaw, v, st, np.array([[0.5, 0.0, 0.0]]), 0.1)
    assert yaw[0] > 0.3 and y[0] > 0  # clockwise yaw, towards +y (south) = right


def test_full_brake_stops_without_reversing():
    x, y, yaw, v, st = _ego(10.0)
    for _ in range(20):
        x, y, yaw, v, st, acc, _ = A.ego_dynamics(x, y, yaw, v, st, np.array([[0.0, 0.0, 1.0]]), 0.1)
    assert v[0] == 0.0 and 5.0 < x[0] < 8.0   # ~ v^2 / (2 * 8 m/s^2) = 6.25 m


def test_idm_free_road_and_standing_leader():
    assert A.idm_acceleration(np.array(0.0), 10.0, np.inf, 0.0, 2.0, 3.0) == pytest.approx(2.0)
    assert A.idm_acceleration(np.array(10.0), 10.0, np.inf, 0.0, 2.0, 3.0) == pytest.approx(0.0)
    assert A.idm_acceleration(np.array(10.0), 10.0, 10.0, 0.0, 2.0, 3.0) < -9.0


def test_box_overlap_separating_axis():
    a = np.array([0.0, 0.0, 0.0, 2.0, 1.0])
    assert A.boxes_overlap(a, np.array([3.9, 0.0, 0.0, 2.0, 1.0]))
    assert not A.boxes_overlap(a, np.array([4.1, 0.0, 0.0, 2.0, 1.0]))
    # Rotated 45 deg: the corner reaches 2 * sqrt(2) ~ 2.83 m.
    assert A.boxes_overlap(a, np.array([4.7, 0.0, np.pi / 4, 2.0, 2.0]))
    assert not A.boxes_overlap(a, np.array([4.9, 0.0, np.pi / 4, 2.0, 2.0]))


def _world_with(specs):
    arrays = A.ActorArrays.empty(1, 4, 300)
    arrays.load(0, specs)
    return arrays


def test_idm_follower_stops_behind_a_static_obstacle_and_for_a_red_light():
    path = np.stack([np.arange(200.0), np.zeros(200)], axis=1)
    follower = A.ActorSpec(kind="vehicle", type_id="v", path=path, s0=0.0, speed=8.0, desired_speed=8.0)
    wall = A.ActorSpec(kind="static", type_id="static.prop.x", path=path[60:61], mode=A.MODE_STATIC)
    arrays = _world_with([follower, wall])
    far_ego = np.array([[1e5, 1e5, 0.0, 2.4, 1.0]])
    for t in range(300):
        A.step_actors(arrays, far_ego, np.zeros(1), np.zeros(1), np.zeros((1, 1), bool), t * 0.1, 0.1)
    assert arrays.speed[0, 0] < 0.05
    assert 60 - 2.3 - 2.3 - 3.0 < arrays.s[0, 0] < 60 - 2.3 - 2.3   # IDM min gap 2.5 m
    red = A.ActorSpec(kind="vehicle", type_id="v", path=path, s0=0.0, speed=8.0, desired_speed=8.0, stop_s=80.0, light=0)
    arrays = _world_with([red])
    for t in range(300):
        A.step_actors(arrays, far_ego, np.zeros(1), np.zeros(1), np.ones((1, 1), bool), t * 0.1, 0.1)
    assert 80 - 2.3 - 3.0 < arrays.s[0, 0] < 80 - 2.3 + 0.5


def test_scripted_walker_waits_for_its_trigger():
    path = np.stack([np.zeros(20), np.arange(20.0)], axis=1)
    walker = A.ActorSpec(kind="walker", type_id="walker.pedestrian.0001", path=path, desired_speed=1.5,
                         mode=A.MODE_SCRIPTED, start_trigger=50.0, extent=(0.3, 0.3, 0.9))
    arrays = _world_with([walker])
    ego = np.array([[1e5, 1e5, 0.0, 2.4, 1.0]])
    for t in range(10):
        A.step_actors(arrays, ego, np.zeros(1), np.array([40.0]), np.zeros((1, 1), bool), t * 0.1, 0.1)
    assert arrays.s[0, 0] == 0.0
    for t in range(10):
        A.step_actors(arrays, ego, np.zeros(1), np.array([50.0]), np.zeros((1, 1), bool), t * 0.1, 0.1)
    assert arrays.s[0, 0] == pytest.approx(1.5 - 0.075, abs=0.01)  # first tick ramps from standstill
