"""The simulator worlds a config's ``env`` describes, for :class:`minddrive.rollout.driver.PolicyDriver`."""

from __future__ import annotations

from typing import Any

from minddrive.errors import UserError


def build_worlds(cfg: Any, count: int) -> Any:
    """``count`` simulator worlds from ``cfg.env``.

    The embedded simulator comes as one ``VecDriveEnv`` (all worlds stepped in one numpy call);
    other backends as a list of independent ``DriveEnv`` objects.
    """
    from minddrive.registry import ENVS, build

    env_cfg = dict(cfg.env)
    if env_cfg.get("type") == "EmbeddedDriveEnv":
        from minddrive.sim.vector import VecDriveEnv

        kwargs = {k: v for k, v in env_cfg.items() if k != "type"}
        try:
            return VecDriveEnv(count, **kwargs)
        except TypeError as exc:
            raise UserError(f"env (EmbeddedDriveEnv): {exc}") from None
    return [build(env_cfg, ENVS, where="env") for _ in range(count)]


__all__ = ["build_worlds"]
