"""The environment interface shared by the embedded simulator and the CARLA backend.

Everything above ``sim/`` (rollout collector, closed-loop evaluator, leaderboard agent)
talks to a :class:`DriveEnv` and nothing else, so a run moves from the embedded
simulator to CARLA by changing ``env=dict(type=...)`` in its config.

Contract
--------
``reset(seed=None, options=None) -> (obs, info)``
    ``options`` may carry ``route`` (a :class:`minddrive.sim.routes.RouteSpec`) or
    ``scenario`` (a Bench2Drive scenario type name) to pick what is driven.
``step(control) -> (obs, reward, terminated, truncated, info)``
    ``control``: float array ``[steer in [-1, 1], throttle in [0, 1], brake in [0, 1]]``
    (CARLA ``VehicleControl`` semantics). One call advances one simulator tick of
    ``env.dt`` seconds. A NaN or wrongly shaped control raises ``UserError`` before
    anything moves (the world is never half-stepped).
    ``reward`` is route-progress in percent this tick; RL rewards are computed from
    ``info`` by the functions in ``minddrive.rl.rewards``.
    ``terminated``: the route ended (completed, or a terminating criterion fired:
    route deviation, agent blocked, tick limit) -- ``info["status"]`` says which.
``route_record() -> dict``
    The leaderboard ``RouteRecord`` (docs/bench2drive.md#result-files) of the current episode, valid
    at any time, final once ``terminated``/``truncated``.

Observation (``obs``) keys -- all numpy, ego frame = x forward, y right (metres):
    ``ego_state``      float32 (EGO_STATE_DIM,)  see ``minddrive.constants.EGO_STATE_FIELDS``
    ``command``        int   path meta-action index 0..5 from navigation
    ``road_option``    int   the CARLA RoadOption of the same navigation command
    ``target_point``   float32 (2,)  next navigation target point in ego frame
    ``route``          float32 (NUM_ROUTE_POINTS, 2) the polyline from the ego through the next target
                       points, 2 m apart (built as the data pipeline builds it from annotations)
    ``images``         uint8 (6, H, W, 3) RGB in ``CAMERA_NAMES`` order   (only if rendering)
    ``cam_intrinsic``  float32 (6, 3, 3);  ``cam2ego`` float32 (6, 4, 4) (UE camera axes);
    ``lidar2img``      float32 (6, 4, 4) ego -> image projection         (only if rendering)
    ``timestamp``      float  seconds since reset

``info`` keys every step:
    ``events``          list of (infraction_key, message) that fired this tick
    ``route_completion`` float 0..100;  ``score_penalty`` float;  ``status`` str ('Started' until the end)
    ``scenario_type``   the Bench2Drive scenario type name of the route
    ``done_reason``     str or None
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from minddrive.constants import (KEY_POINT_SPACING, NUM_PATH_POINTS, NUM_ROUTE_POINTS, ROUTE_NODES,  # noqa: F401 (re-exported)
                                 ROUTE_POINT_SPACING, TARGET_MIN_DISTANCE)


class DriveEnv(abc.ABC):
    """Gymnasium-style driving environment (see module docstring for the full contract)."""

    #: seconds per ``step``
    dt: float = 0.1

    @abc.abstractmethod
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        ...

    @abc.abstractmethod
    def step(self, control: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        ...

    @abc.abstractmethod
    def route_record(self) -> dict:
        ...

    def close(self) -> None:
        """Release simulator resources (a no-op for the embedded simulator)."""


def validate_control(control: Any) -> np.ndarray:
    """Return ``control`` as float64 ``[steer, throttle, brake]`` or raise a one-line ``UserError``."""
    from minddrive.errors import UserError

    arr = np.asarray(control, dtype=np.float64)
    if arr.shape != (3,):
        raise UserError(f"control: expected shape (3,) [steer, throttle, brake], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UserError(f"control: expected finite values, got {arr.tolist()}")
    return np.array([np.clip(arr[0], -1, 1), np.clip(arr[1], 0, 1), np.clip(arr[2], 0, 1)])


__all__ = ["DriveEnv", "validate_control", "NUM_ROUTE_POINTS", "ROUTE_POINT_SPACING", "NUM_PATH_POINTS",
           "KEY_POINT_SPACING", "TARGET_MIN_DISTANCE", "ROUTE_NODES"]
