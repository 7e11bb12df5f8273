"""From a plan to control: the PID plan follower, and the meta-action -> plan semantics.

``PIDController`` turns a planned path and speed waypoints (ego frame, docs/upstream.md#model) into
CARLA control: lateral from the path (pure-pursuit angle to an aim point, PD on it),
longitudinal from the speed waypoints (PID on the speed error, throttle capped at 0.75,
brake when the plan says stop or the car is much faster than planned).

``decision_to_plan`` documents what every speed meta-action means physically and builds the
plan a decision implies, so decision-level RL can run without a neural trajectory head.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS, SPEED_ACTIONS, WAYPOINT_DT

MAX_THROTTLE = 0.75
STOP_SPEED = 0.4          # m/s: a planned speed below this is a stop
BRAKE_RATIO = 1.1         # brake when faster than 1.1 x the planned speed

# Physical meaning of each speed meta-action (index order of constants.SPEED_ACTIONS):
# (acceleration m/s^2 towards the target, target-speed rule). Bands: slow < 5 m/s <= moderate < 10 m/s <= fast.
SLOW_BAND, FAST_BAND = 5.0, 10.0
SPEED_ACTION_PHYSICS = {
    "maintain moderate speed": (1.0, lambda v, limit: float(np.clip(v, SLOW_BAND, FAST_BAND))),
    "stop": (4.0, lambda v, limit: 0.0),
    "maintain slow speed": (1.0, lambda v, limit: float(np.clip(v, 2.0, SLOW_BAND))),
    "speed up": (1.5, lambda v, limit: limit),
    "slow down": (1.5, lambda v, limit: 0.0),
    "maintain fast speed": (1.0, lambda v, limit: float(np.clip(v, FAST_BAND, max(limit, FAST_BAND)))),
    "slow down rapidly": (4.5, lambda v, limit: 0.0),
}


class PID:
    def __init__(self, kp: float, ki: float, kd: float, window: int = 20):
        self.kp, self.ki, self.kd = kp, ki, kd
        self.errors: deque[float] = deque([0.0] * window, maxlen=window)

    def __call__(self, error: float) -> float:
        self.errors.append(error)
        integral = float(np.mean(self.errors))
        derivative = self.errors[-1] - self.errors[-2]
        return self.kp * error + self.ki * integral + self.kd * derivative

    def reset(self) -> None:
        self.errors.extend([0.0] * self.errors.maxlen)


def polyline_points_at(points: np.ndarray, distances) -> np.ndarray:
    """Points (K, 2) at arc lengths ``distances`` (K,) along a polyline that starts at the ego (origin)."""
    pts = np.concatenate([[[0.0, 0.0]], np.asarray(points, dtype=np.float64)])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    d = np.asarray(distances, dtype=np.float64)
    return np.stack([np.interp(d, s, pts[:, 0]), np.interp(d, s, pts[:, 1])], axis=-1)


def polyline_point_at(points: np.ndarray, distance: float) -> np.ndarray:
    """Point at arc length ``distance`` (clamped to the end) along a polyline starting at the origin."""
    return polyline_points_at(points, [distance])[0]


class PIDController:
    """Stateful (one per env) plan follower: ``(path (P,2), speed_waypoints (6,2), speed) -> control``."""

    def __init__(self, wheelbase: float = 2.85, max_steer_angle: float = np.deg2rad(40.0), dt: float = 0.1):
        self.wheelbase, self.max_steer_angle, self.dt = wheelbase, max_steer_angle, dt
        self.turn = PID(kp=1.0, ki=0.0, kd=0.15, window=5)
        self.speed = PID(kp=5.0, ki=0.5, kd=1.0, window=20)

    def reset(self) -> None:
        self.turn.reset()
        self.speed.reset()

    def desired_speed(self, speed_waypoints: np.ndarray) -> float:
        """Mean planned speed over the first second (two 0.5 s waypoint steps)."""
        wps = np.concatenate([[[0.0, 0.0]], np.asarray(speed_waypoints, dtype=np.float64)[:2]])
        return float(np.linalg.norm(np.diff(wps, axis=0), axis=1).mean() / WAYPOINT_DT)

    def __call__(self, path: np.ndarray, speed_waypoints: np.ndarray, speed: float) -> np.ndarray:
        path, wps = np.asarray(path, dtype=np.float64), np.asarray(speed_waypoints, dtype=np.float64)
        if path.ndim != 2 or path.shape[1] != 2 or wps.shape != (NUM_FUTURE_WAYPOINTS, 2):
            raise ValueError(f"PIDController: expected path (P, 2) and speed_waypoints (6, 2), got {path.shape}, {wps.shape}")
        # Lateral: pure pursuit to an aim point further ahead at speed, then PD on the wheel angle.
        lookahead = float(np.clip(3.0 + 0.4 * speed, 4.0, 12.0))
        aim = polyline_point_at(path, lookahead)
        alpha = np.arctan2(aim[1], max(aim[0], 1e-3))
        wheel = np.arctan(2.0 * self.wheelbase * np.sin(alpha) / max(np.hypot(*aim), 1e-3))
        steer = float(np.clip(self.turn(wheel / self.max_steer_angle), -1.0, 1.0))
        # Longitudinal.
        desired = self.desired_speed(wps)
        brake_needed = desired < STOP_SPEED or speed > BRAKE_RATIO * desired + 0.2
        if brake_needed:
            self.speed(0.0)
            brake = 0.3 + 0.25 * speed if desired < STOP_SPEED else 0.15 + 0.35 * (speed - desired)
            return np.array([steer, 0.0, float(np.clip(brake, 0.0, 1.0))])
        throttle = self.speed(float(np.clip(desired - speed, 0.0, 0.25)))
        return np.array([steer, float(np.clip(throttle, 0.0, MAX_THROTTLE)), 0.0])


def speed_profile(current_speed: float, speed_action_index: int, speed_limit: float,
                  steps: int = NUM_FUTURE_WAYPOINTS, dt: float = WAYPOINT_DT) -> np.ndarray:
    """Future speeds (steps,) the meta-action implies, from ``current_speed``."""
    accel, target_rule = SPEED_ACTION_PHYSICS[SPEED_ACTIONS[int(speed_action_index)]]
    target = target_rule(float(current_speed), float(speed_limit))
    speeds, v = [], float(current_speed)
    for _ in range(steps):
        v = min(v + accel * dt, target) if target > v else max(v - accel * dt, target)
        speeds.append(v)
    return np.array(speeds)


def waypoints_along(path: np.ndarray, speeds: np.ndarray, current_speed: float, dt: float = WAYPOINT_DT) -> np.ndarray:
    """Positions reached along ``path`` (ego frame) when driving ``speeds`` at ``dt`` steps (trapezoids)."""
    prev = np.concatenate([[current_speed], speeds[:-1]])
    distance = np.cumsum(0.5 * (prev + speeds) * dt)
    return polyline_points_at(path, distance)


def decision_to_plan(obs: dict, speed_action_index: int) -> dict:
    """The plan a speed meta-action implies: path along ``obs['route']``, speed waypoints from the physics above."""
    if not 0 <= int(speed_action_index) < len(SPEED_ACTIONS):
        raise ValueError(f"speed_action_index: expected 0..{len(SPEED_ACTIONS) - 1}, got {speed_action_index}")
    route = np.asarray(obs["route"], dtype=np.float64)
    speed, limit = float(obs["ego_state"][0]), float(obs["ego_state"][7])
    # The observed route is 2 m spaced already; its first NUM_PATH_POINTS points are the path.
    path = route[:NUM_PATH_POINTS] if len(route) >= NUM_PATH_POINTS else np.concatenate(
        [route, np.repeat(route[-1:], NUM_PATH_POINTS - len(route), 0)])
    speeds = speed_profile(speed, speed_action_index, limit)
    return dict(path=path.astype(np.float32), speed_waypoints=waypoints_along(path, speeds, speed).astype(np.float32),
                speeds=speeds)


class ScriptedActionExpert:
    """Drive a fixed (or callable) speed meta-action through ``decision_to_plan`` and a PID controller."""

    def __init__(self, speed_action_index: int | None = None, policy=None):
        self.speed_action_index, self.policy = speed_action_index, policy
        self.controller = PIDController()
        self.last_plan: dict | None = None

    def reset(self) -> None:
        self.controller.reset()

    def act(self, obs: dict) -> np.ndarray:
        action = self.policy(obs) if self.policy is not None else self.speed_action_index
        self.last_plan = decision_to_plan(obs, int(action))
        return self.controller(self.last_plan["path"], self.last_plan["speed_waypoints"], float(obs["ego_state"][0]))

