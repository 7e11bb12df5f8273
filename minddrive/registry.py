"""mmengine registries for everything a config can build with ``dict(type=...)``.

``locations`` lets mmengine import the modules that register into each registry
the first time something is built, so ``import minddrive`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import Registry

from minddrive.errors import UserError

MODELS = Registry("model", locations=["minddrive.models", "minddrive.rl"])
DATASETS = Registry("dataset", locations=["minddrive.data"])
TRANSFORMS = Registry("transform", locations=["minddrive.data"])
ENVS = Registry("env", locations=["minddrive.sim"])
AGENTS = Registry("agent", locations=["minddrive.sim", "minddrive.eval"])
REWARDS = Registry("reward", locations=["minddrive.rl"])
HOOKS = Registry("hook", locations=["minddrive.train", "minddrive.rl"])
OPTIMIZERS = Registry("optimizer", locations=["minddrive.train"])


def build(cfg: Any, registry: Registry, where: str = "config", **default_args: Any) -> Any:
    """Build ``cfg`` (a ``dict(type=...)``) from ``registry``; a bad type is a one-line :class:`UserError`.

    ``where`` names the config key being built so the message points at it.
    """
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise UserError(f"{where}: expected a dict with a 'type' key, got {cfg!r}")
    registry.import_from_location()
    type_name = cfg["type"]
    if isinstance(type_name, str) and registry.get(type_name) is None:
        known = ", ".join(sorted(registry.module_dict)) or "none registered"
        raise UserError(f"{where}.type: unknown {registry.name} type {type_name!r}; expected one of: {known}")
    try:
        return registry.build(cfg, default_args=default_args or None)
    except TypeError as exc:
        # mmengine wraps constructor TypeErrors; an unexpected or missing keyword is a config error.
        raise UserError(f"{where} ({type_name}): {exc}") from None
