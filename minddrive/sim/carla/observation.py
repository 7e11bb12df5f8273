"""Observations for the CARLA backend and the leaderboard agent: the DriveEnv observation from sensor data."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from minddrive.constants import CAMERA_NAMES, EGO_STATE_FIELDS, path_index_from_road_option
from minddrive.sim.base import NUM_ROUTE_POINTS, ROUTE_POINT_SPACING
from minddrive.sim.carla.route import RouteTracker, to_ego_frame
from minddrive.utils.geometry import navigation_route


def bgra_to_rgb(raw: bytes | np.ndarray, width: int, height: int) -> np.ndarray:
    """A ``carla.Image.raw_data`` buffer (BGRA) -> (H, W, 3) uint8 RGB."""
    bgra = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(bgra[:, :, 2::-1])


def ego_state_vector(speed: float, accel_ego: Sequence[float], yaw_rate: float, control: Sequence[float],
                     speed_limit: float) -> np.ndarray:
    """The ``EGO_STATE_FIELDS`` vector: speed m/s, ego-frame acceleration, yaw rate rad/s, last control, limit m/s."""
    steer, throttle, brake = control
    values = dict(speed=speed, acc_x=accel_ego[0], acc_y=accel_ego[1], yaw_rate=yaw_rate, steer=steer,
                  throttle=throttle, brake=brake, speed_limit=speed_limit)
    return np.array([values[name] for name in EGO_STATE_FIELDS], dtype=np.float32)


def build_observation(tracker: RouteTracker, x: float, y: float, yaw: float, ego_state: np.ndarray,
                      timestamp: float, images: dict[str, np.ndarray] | None = None) -> dict:
    """The DriveEnv observation from the ego pose, the route and (optionally) RGB images by camera name."""
    road_option = tracker.road_option()
    obs = {
        "ego_state": ego_state.astype(np.float32),
        "command": path_index_from_road_option(road_option),
        "road_option": road_option,
        "target_point": to_ego_frame(tracker.target_point()[None], x, y, yaw)[0].astype(np.float32),
        "route": navigation_route(to_ego_frame(tracker.nodes_ahead(), x, y, yaw), NUM_ROUTE_POINTS,
                                  ROUTE_POINT_SPACING).astype(np.float32),
        "timestamp": float(timestamp),
    }
    if images is not None:
        from minddrive.sim.sensors import camera_calibration

        stacked = np.stack([images[name] for name in CAMERA_NAMES])
        obs["images"] = stacked
        obs.update(camera_calibration(width=stacked.shape[2], height=stacked.shape[1]))
    return obs


def camera_blueprint_attributes(width: int, height: int, fov: float) -> dict[str, str]:
    return {"image_size_x": str(width), "image_size_y": str(height), "fov": str(fov)}


__all__ = ["bgra_to_rgb", "build_observation", "camera_blueprint_attributes", "ego_state_vector"]
