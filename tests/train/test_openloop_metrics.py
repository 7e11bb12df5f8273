import math

import numpy as np
import pytest

from minddrive.train.openloop import (OpenLoopMetrics, boxes_overlap, constant_velocity_plan, ego_collisions,
                                      headings)


def test_constant_velocity_plan_holds_speed_straight_ahead():
    ego_state = np.zeros((2, 8))
    ego_state[:, 0] = [4.0, 0.0]
    plan = constant_velocity_plan(ego_state)
    assert plan.shape == (2, 6, 2)
    np.testing.assert_allclose(plan[0, :, 0], [2, 4, 6, 8, 10, 12])
    assert not plan[1].any() and not plan[:, :, 1].any()


def test_oriented_box_overlap():
    a = np.array([0.0, 0.0, 4.0, 2.0, 0.0])
    assert boxes_overlap(a, np.array([3.9, 0.0, 4.0, 2.0, 0.0]))
    assert not boxes_overlap(a, np.array([4.1, 0.0, 4.0, 2.0, 0.0]))
    # A box rotated 45 deg at (3.2, 0): its corner reaches x = 3.2 - 2.12 = 1.08 < 2 -> overlap.
    assert boxes_overlap(a, np.array([3.2, 0.0, 3.0, 3.0, math.pi / 4]))
    # The same box at (4.2, 0): corner at 2.08 > 2 -> clear; axis-aligned hulls would still overlap.
    assert not boxes_overlap(a, np.array([4.2, 0.0, 3.0, 3.0, math.pi / 4]))
    # Rotating the ego 90 deg makes it 2 m long in x: a box at x=2.6 (reaching 0.6) clears... only if narrow.
    assert not boxes_overlap(np.array([0, 0, 4.0, 2.0, math.pi / 2]), np.array([2.6, 0, 3.0, 1.0, 0.0]))
    assert boxes_overlap(np.array([0, 0, 4.0, 2.0, 0.0]), np.array([2.6, 0, 3.0, 1.0, 0.0]))


def test_headings_follow_travel_and_hold_when_stopped():
    pts = np.array([[[1, 0], [1, 1], [1, 1.01], [0, 1.01]]], dtype=float)
    np.testing.assert_allclose(headings(pts)[0], [0, math.pi / 2, math.pi / 2, math.pi])


def test_metrics_l2_and_collision_rates():
    gt = np.zeros((2, 6, 2))
    gt[..., 0] = np.arange(1, 7)  # 1 m per 0.5 s
    plan = gt.copy()
    plan[0, :, 1] = 1.0             # frame 0: 1 m lateral error everywhere
    plan[1, 3:, 0] += 10.0          # frame 1: jumps 10 m ahead from 2 s on, into a parked car
    mask = np.ones((2, 6))
    boxes = np.zeros((2, 1, 6, 5))
    boxes[1, 0, :] = [15.0, 0.0, 4.0, 2.0, 0.0]  # parked at x=15 (the plan reaches 14 at 2 s)
    amask = np.ones((2, 1, 6))
    m = OpenLoopMetrics()
    m.update(plan, gt, mask, boxes, amask)
    r = m.result()
    assert r["l2_1s"] == pytest.approx(0.5)          # (1 + 0) / 2
    assert r["l2_2s"] == pytest.approx((1 + 10) / 2)
    assert r["collision_1s"] == 0.0
    assert r["collision_2s"] == pytest.approx(0.5)
    assert r["collision_3s"] == pytest.approx(0.5)
    assert r["l2_avg"] == pytest.approx((0.5 + 5.5 + 5.5) / 3)


def test_collisions_the_ground_truth_also_has_are_not_counted():
    gt = np.zeros((1, 6, 2))
    boxes = np.zeros((1, 1, 6, 5))
    boxes[0, 0, :] = [0.0, 0.0, 4.0, 2.0, 0.0]  # an agent on top of the ego (label noise)
    assert ego_collisions(gt, boxes, np.ones((1, 1, 6))).all()
    m = OpenLoopMetrics()
    m.update(gt.copy(), gt, np.ones((1, 6)), boxes, np.ones((1, 1, 6)))
    assert m.result()["collision_3s"] == 0.0
    # and a masked-out agent never collides
    assert not ego_collisions(gt, boxes, np.zeros((1, 1, 6))).any()
