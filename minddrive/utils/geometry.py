"""Transforms in CARLA's conventions, shared by the simulator, the data loader and the CARLA backend."""

from __future__ import annotations

import math

import numpy as np


def carla_matrix(x: float, y: float, z: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """CARLA ``Transform.get_matrix()`` (angles in degrees): local -> parent, UE axes, 4x4 float64."""
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    return np.array([
        [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr, x],
        [sy * cp, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr, y],
        [sp, -cp * sr, cp * cr, z],
        [0.0, 0.0, 0.0, 1.0],
    ])


def resample_polyline(points: np.ndarray, spacing: float, count: int, extrapolate: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Points at arc lengths ``spacing * (1..count)`` along ``points`` (first point = origin of arc length).

    Returns ``(count, 2)`` points and a mask that is 0 beyond the polyline's end; with ``extrapolate`` the
    last segment's direction is continued instead (route centre lines go on past the known nodes).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((count, 2), dtype=np.float64)
    mask = np.zeros(count, dtype=np.float32)
    if len(points) == 0:
        return out.astype(np.float32), mask
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-6])  # drop repeated points (a stopped car)
    points = points[keep]
    if len(points) == 1:
        out[:] = points[0]
        return out.astype(np.float32), mask
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    targets = spacing * np.arange(1, count + 1)
    inside = targets <= arc[-1] + 1e-6
    out[:, 0] = np.interp(targets, arc, points[:, 0])
    out[:, 1] = np.interp(targets, arc, points[:, 1])
    mask[inside] = 1.0
    if extrapolate and not inside.all():
        direction = points[-1] - points[-2]
        direction /= np.linalg.norm(direction)
        out[~inside] = points[-1] + (targets[~inside] - arc[-1])[:, None] * direction
        mask[:] = 1.0
    return out.astype(np.float32), mask


def navigation_route(nodes_ego: np.ndarray, count: int, spacing: float) -> np.ndarray:
    """The ``route`` observation: the polyline from the ego (origin) through the upcoming navigation target
    points (ego frame, in route order), ``count`` points ``spacing`` m apart, continued past the last node.

    The same function of the same inputs in training data (``minddrive.data.infos``), the embedded simulator
    (vectorised in ``minddrive.sim.vector``) and the CARLA backend, so a model sees one feature everywhere."""
    nodes = np.asarray(nodes_ego, dtype=np.float64).reshape(-1, 2)
    route, _ = resample_polyline(np.concatenate([np.zeros((1, 2)), nodes]), spacing, count, extrapolate=True)
    if len(nodes) == 0 or not np.isfinite(route).all():
        route = np.stack([spacing * np.arange(1, count + 1), np.zeros(count)], -1).astype(np.float32)
    return route
