"""Small, fast stand-ins with the real APIs: a 1-D corridor world, its controller, a feature policy.

The corridor: the ego drives a 40 m straight route; a traffic light at 20 m is red for the first
3 s. Crossing it while red fires ``red_light``. Stopping before it and going on green completes the
route without infractions, so there is a real decision problem for PPO: speed meta-action ``stop``
(index 1) is right while the light is red and near, ``speed up`` (3) otherwise.
Imported by worker subprocesses through the config's ``custom_imports``.
"""

from __future__ import annotations

import time

import numpy as np

from minddrive.constants import EGO_STATE_DIM, EGO_STATE_FIELDS, INFRACTION_KEYS
from minddrive.registry import ENVS, MODELS
from minddrive.rl.feature_policy import StateFeaturePolicy
from minddrive.constants import NUM_ROUTE_POINTS
from minddrive.sim.base import DriveEnv

TARGET_SPEED = (4.0, 0.0, 2.0, 8.0, 3.0, 6.0, 0.0)  # per speed meta-action, m/s
_SPEED = EGO_STATE_FIELDS.index("speed")


@ENVS.register_module()
class CorridorEnv(DriveEnv):
    dt = 0.1

    def __init__(self, length: float = 40.0, light_at: float = 20.0, red_for: float = 3.0, max_ticks: int = 200,
                 tick_sleep: float = 0.0):
        self.length, self.light_at, self.red_for, self.max_ticks = length, light_at, red_for, max_ticks
        self.tick_sleep = tick_sleep

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.x, self.v, self.t, self.ticks = 0.0, float(rng.uniform(0, 2)), 0.0, 0
        self.red_for_now = self.red_for * float(rng.uniform(0.5, 1.5))
        self.infractions = {key: [] for key in INFRACTION_KEYS}
        self.status, self.seed = "Started", seed
        return self._obs(), self._info([])

    def _red(self) -> bool:
        return self.t < self.red_for_now

    def _obs(self) -> dict:
        ego = np.zeros(EGO_STATE_DIM, dtype=np.float32)
        ego[_SPEED] = self.v
        gap = self.light_at - self.x
        features = np.array([self.v / 8, max(gap, -1) / 20, float(self._red()), float(self._red() and 0 < gap < 12)],
                            dtype=np.float32)
        return dict(ego_state=ego, command=0, road_option=4, target_point=np.array([gap, 0.0], dtype=np.float32),
                    route=np.zeros((NUM_ROUTE_POINTS, 2), dtype=np.float32), timestamp=self.t, features=features)

    def _info(self, events):
        return dict(events=events, route_completion=self.completion(), score_penalty=self.penalty(),
                    status=self.status, scenario_type="SignalizedJunctionLeftTurn", done_reason=None)

    def completion(self) -> float:
        return float(np.clip(100.0 * self.x / self.length, 0, 100))

    def penalty(self) -> float:
        return 0.7 ** len(self.infractions["red_light"])

    def step(self, control):
        steer, throttle, brake = np.asarray(control, dtype=np.float64)
        if self.tick_sleep:
            time.sleep(self.tick_sleep)
        before = self.x
        self.v = max(0.0, self.v + (4.0 * throttle - 8.0 * brake) * self.dt)
        self.x += self.v * self.dt
        self.t += self.dt
        self.ticks += 1
        events = []
        if before < self.light_at <= self.x and self._red():
            events.append(("red_light", f"Agent ran a red light at t={self.t:.1f}"))
            self.infractions["red_light"].append(events[-1][1])
        terminated = False
        if self.x >= self.length:
            self.status, terminated = "Completed", True
        elif self.ticks >= self.max_ticks:
            self.status, terminated = "Failed - Agent timed out", True
            self.infractions["route_timeout"].append("Route timeout.")
        return self._obs(), 0.0, terminated, False, self._info(events)

    def route_record(self) -> dict:
        return dict(index=0, route_id=f"RouteScenario_{self.seed}_rep0", scenario_name="SignalizedJunctionLeftTurn_1",
                    weather_id="0", save_name="", status=self.status,
                    num_infractions=sum(len(v) for v in self.infractions.values()), infractions=self.infractions,
                    scores=dict(score_route=self.completion(), score_penalty=self.penalty(),
                                score_composed=self.completion() * self.penalty()),
                    meta=dict(route_length=self.length, duration_game=self.t, duration_system=0.0), town_name="Corridor")


class SpeedController:
    """Stand-in PID: drive toward the speed implied by the first waypoint."""

    def __init__(self):
        self.calls = 0

    def reset(self):
        self.calls = 0

    def __call__(self, path, waypoints, speed):
        self.calls += 1
        target = float(np.linalg.norm(waypoints[0])) / 0.5
        error = target - speed
        return np.array([0.0, float(np.clip(error, 0, 0.75)), float(np.clip(-error, 0, 1))])


@MODELS.register_module()
class CorridorPolicy(StateFeaturePolicy):
    """The feature policy on the corridor's 4 features, with a constant-speed action expert."""

    obs_hook = None

    def __init__(self, hidden: int = 16, num_features: int = 4, init_bias=None):
        super().__init__(hidden=hidden, num_features=num_features, init_bias=init_bias)
        self.config["type"] = "CorridorPolicy"

    def plan(self, obs, speed_index):
        speed = TARGET_SPEED[speed_index]
        waypoints = np.stack([np.array([speed * 0.5 * (k + 1), 0.0]) for k in range(6)])
        path = np.stack([np.array([2.0 * (k + 1), 0.0]) for k in range(10)])
        return path, waypoints, 0
