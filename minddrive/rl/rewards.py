"""RL rewards: registered, config-selected functions of one simulator tick.

A reward object is stateful per world (it remembers route progress), so the driver builds one
per world and calls ``reset()`` at every episode start. ``__call__(obs, info)`` returns a
:class:`RewardStep`; ``terminal`` asks the rollout to end the episode now (upstream: at the
first penalty event). Evaluation ignores ``terminal`` and drives to the leaderboard's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from minddrive.constants import EGO_STATE_FIELDS, PENALTY_COEFFICIENTS
from minddrive.registry import REWARDS

# Events that end an RL episode with -1 upstream (docs/upstream.md#online-rl).
PENALTY_EVENTS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light",
                  "stop_infraction", "route_dev", "outside_route_lanes")
_ACC_X = EGO_STATE_FIELDS.index("acc_x")
_ACC_Y = EGO_STATE_FIELDS.index("acc_y")


@dataclass
class RewardStep:
    reward: float
    terminal: bool
    events: tuple[str, ...] = ()


def _event_keys(info: dict) -> list[str]:
    return [event[0] if isinstance(event, (tuple, list)) else str(event) for event in info.get("events", ())]


@REWARDS.register_module()
class SparseRouteReward:
    """Upstream MindDrive reward: +1 once route completion reaches 100 %, -1 and stop on a penalty event."""

    def __init__(self, penalty_events: Iterable[str] = PENALTY_EVENTS, completion: float = 100.0,
                 success: float = 1.0, penalty: float = -1.0):
        self.penalty_events = frozenset(penalty_events)
        self.completion, self.success, self.penalty = float(completion), float(success), float(penalty)
        self.reset()

    def reset(self) -> None:
        self._completed = False

    def __call__(self, obs: dict | None, info: dict) -> RewardStep:
        fired = tuple(key for key in _event_keys(info) if key in self.penalty_events)
        if fired:
            return RewardStep(self.penalty, True, fired)
        if not self._completed and float(info.get("route_completion", 0.0)) >= self.completion - 1e-6:
            self._completed = True
            return RewardStep(self.success, True)
        return RewardStep(0.0, False)


@REWARDS.register_module()
class ShapedReward:
    """Dense alternative: route progress, weighted penalties (leaderboard coefficients) and comfort.

    reward = progress_weight * d(route_completion)/100 - penalty_weight * (1 - coefficient) per event
             - comfort_weight * |d(acceleration)| (m/s^3 * dt, a jerk proxy) + success on completion.
    CaRL's lesson (docs/upstream.md#online-rl) is that such sums scale worse than the sparse reward; kept for study.
    """

    def __init__(self, progress_weight: float = 1.0, penalty_weight: float = 1.0, comfort_weight: float = 0.01,
                 success: float = 1.0, terminate_on: Iterable[str] = PENALTY_EVENTS, dt: float = 0.1):
        self.progress_weight, self.penalty_weight = float(progress_weight), float(penalty_weight)
        self.comfort_weight, self.success, self.dt = float(comfort_weight), float(success), float(dt)
        self.terminate_on = frozenset(terminate_on)
        self.reset()

    def reset(self) -> None:
        self._completion = 0.0
        self._acc: tuple[float, float] | None = None
        self._completed = False

    def __call__(self, obs: dict | None, info: dict) -> RewardStep:
        completion = float(info.get("route_completion", 0.0))
        reward = self.progress_weight * max(completion - self._completion, 0.0) / 100.0
        self._completion = max(completion, self._completion)
        events = tuple(_event_keys(info))
        for key in events:
            # Unlisted events (route_dev, outside lanes) cost as much as a layout collision.
            reward -= self.penalty_weight * (1.0 - PENALTY_COEFFICIENTS.get(key, PENALTY_COEFFICIENTS["collisions_layout"]))
        if obs is not None and "ego_state" in obs:
            acc = (float(obs["ego_state"][_ACC_X]), float(obs["ego_state"][_ACC_Y]))
            if self._acc is not None:
                jerk = ((acc[0] - self._acc[0]) ** 2 + (acc[1] - self._acc[1]) ** 2) ** 0.5 / self.dt
                reward -= self.comfort_weight * jerk * self.dt
            self._acc = acc
        terminal = any(key in self.terminate_on for key in events)
        if not self._completed and completion >= 100.0 - 1e-6:
            self._completed, terminal = True, True
            reward += self.success
        return RewardStep(reward, terminal, events)


def build_reward(cfg: Any):
    """One fresh reward object from ``dict(type=...)`` (call once per world)."""
    from minddrive.registry import build

    return build(dict(cfg), REWARDS, where="reward")


def reward_factory(cfg: Any):
    """``cfg`` -> a callable giving one fresh reward per call (``PolicyDriver(reward_factory=...)``)."""
    cfg = dict(cfg)
    return lambda: build_reward(cfg)
