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
