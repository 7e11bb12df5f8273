"""Terrain of the embedded towns: a smooth height field that gives recorded poses a height, pitch and roll.

Bench2Drive's towns lie at up to a few hundred metres (Town12/13/15 at 118-378 m) and their roads climb
several degrees, so real annotations carry world z, pitch and roll in every pose. The embedded simulator
drives on a plane; the data writer lifts what it records onto this field (the dynamics stay planar), so the
loader's 3-D transforms see what real data makes them do. Heights are a town's base altitude plus two
long sine waves whose combined gradient stays below ``MAX_SLOPE_DEG``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from minddrive.utils.geometry import carla_matrix

MAX_SLOPE_DEG = 6.0
WAVELENGTHS = (420.0, 260.0)          # metres; long enough that a car-length sees a nearly planar road
BASE_ALTITUDE = (20.0, 380.0)         # metres: the range a town's base height is drawn from


class Terrain:
    """``height(x, y)`` and the pose of a car standing on it; deterministic per town name."""

    def __init__(self, town: str):
        rng = np.random.default_rng(zlib.crc32(town.encode()))
        self.base = float(rng.uniform(*BASE_ALTITUDE))
        self.directions = rng.uniform(0.0, 2 * math.pi, size=len(WAVELENGTHS))
        self.phases = rng.uniform(0.0, 2 * math.pi, size=len(WAVELENGTHS))
        # Amplitudes so that the sum of the waves' steepest gradients is tan(MAX_SLOPE_DEG).
        budget = math.tan(math.radians(MAX_SLOPE_DEG)) / len(WAVELENGTHS)
        self.amplitudes = np.array([budget * w / (2 * math.pi) for w in WAVELENGTHS])
        self.wavenumbers = 2 * math.pi / np.array(WAVELENGTHS)

    def _argument(self, x, y):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        ux, uy = np.cos(self.directions), np.sin(self.directions)
        return self.wavenumbers * (x[..., None] * ux + y[..., None] * uy) + self.phases

    def height(self, x, y) -> np.ndarray | float:
        value = self.base + (self.amplitudes * np.sin(self._argument(x, y))).sum(-1)
        return float(value) if np.ndim(value) == 0 else value

    def gradient(self, x: float, y: float) -> tuple[float, float]:
        slope = self.amplitudes * self.wavenumbers * np.cos(self._argument(x, y))
        return float((slope * np.cos(self.directions)).sum()), float((slope * np.sin(self.directions)).sum())

    def attitude(self, x: float, y: float, yaw: float) -> tuple[float, float, float]:
        """``(z, pitch, roll)`` (metres, degrees; CARLA signs: pitch > 0 nose up, roll > 0 right side down) of
        a body at ``x, y`` heading ``yaw`` (radians) whose x and y axes lie in the surface."""
        hx, hy = self.gradient(x, y)
        c, s = math.cos(yaw), math.sin(yaw)
        forward, right = hx * c + hy * s, -hx * s + hy * c
        pitch = math.atan(forward)
        roll = math.atan2(-right, math.sin(pitch) * forward + math.cos(pitch))
        return self.height(x, y), math.degrees(pitch), math.degrees(roll)

    def pose(self, x: float, y: float, yaw: float, up: float = 0.0) -> np.ndarray:
        """4x4 local -> world of a body standing on the surface at ``x, y`` (its origin ``up`` above it)."""
        z, pitch, roll = self.attitude(x, y, yaw)
        return carla_matrix(x, y, z + up, pitch, roll, math.degrees(yaw))


__all__ = ["Terrain", "MAX_SLOPE_DEG"]
