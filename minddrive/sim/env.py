"""``EmbeddedDriveEnv``: the embedded simulator behind the :class:`minddrive.sim.base.DriveEnv` contract.

It is the one-world case of :class:`minddrive.sim.vector.VecDriveEnv` (the batched core), so a
single env and a batch step through exactly the same code. Build it from a config with
``env=dict(type="EmbeddedDriveEnv", render=False, image_size=(256, 448))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minddrive.registry import ENVS
from minddrive.sim.base import DriveEnv, validate_control
from minddrive.sim.criteria import BLOCKED_SECONDS
from minddrive.sim.vector import VecDriveEnv


@ENVS.register_module()
class EmbeddedDriveEnv(DriveEnv):
    """One seeded scenario world; ``reset(seed, options={"scenario": type})`` picks the route."""

    dt = VecDriveEnv.dt

    def __init__(self, render: bool = False, image_size: tuple[int, int] = (256, 448), blocked_seconds: float = BLOCKED_SECONDS,
                 scenario: str | None = None):
        self.core = VecDriveEnv(1, render=render, image_size=image_size, blocked_seconds=blocked_seconds,
                                scenario=scenario)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        return self.core.reset_world(0, seed, options)

    def step(self, control: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        control = validate_control(control)
        obs, reward, terminated, truncated, infos = self.core.step(control[None])
        return ({k: v[0] for k, v in obs.items()}, float(reward[0]), bool(terminated[0]), bool(truncated[0]), infos[0])

    def route_record(self) -> dict:
        return self.core.route_record(0)

    def metric_info(self) -> dict[int, dict]:
        """The ticks driven so far as Bench2Drive's ``metric_info.json`` entries."""
        return self.core.metric_info(0)

    def snapshot(self):
        """The world as a :class:`minddrive.sim.scene.Scene` (what sensors and writers draw)."""
        return self.core.snapshot(0)

    @property
    def world(self):
        """The :class:`minddrive.sim.scenarios.ScenarioWorld` being driven (privileged; for the expert)."""
        return self.core.worlds[0]

    @property
    def done(self) -> bool:
        return bool(self.core.criteria.done[0])
