"""Loading, saving and placing the policy that drives rollouts and evaluations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minddrive.errors import UserError

POLICY_RUNTIME_KEYS = ("dtype", "cuda_graphs", "compile", "fuse_decision_value", "merge_adapters",
                       "vit_float8")


def load_policy(cfg: Any, ckpt: str | os.PathLike | None, device: str = "cpu", runtime: dict | None = None):
    """The rollout policy for ``cfg.model``: loaded from ``ckpt`` when given, else freshly built.
    ``runtime`` (``rollout.policy`` in a config: ``POLICY_RUNTIME_KEYS``) sets how the MindDrive VLA runs
    (``MindDrivePolicy``'s inference dtype, CUDA graphs, regional compile).

    A model class with its own ``from_checkpoint`` (e.g. ``StateFeaturePolicy``) is its own policy;
    the MindDrive VLA model is wrapped in ``minddrive.models.policy.MindDrivePolicy``. Model classes register
    from the locations ``minddrive.registry.MODELS`` lists (the RL-side ones included).
    """
    from minddrive.registry import MODELS, build

    model_cfg = cfg.get("model")
    if model_cfg is None:
        raise UserError(f"{getattr(cfg, 'filename', 'config')}: missing key 'model'")
    MODELS.import_from_location()
    cls = MODELS.get(model_cfg["type"])
    if cls is None:
        raise UserError(f"model.type: unknown model type {model_cfg['type']!r}")
    if ckpt is not None and not Path(ckpt).exists():
        raise UserError(f"--ckpt {ckpt}: checkpoint not found")
    runtime = dict(runtime or {})
    unknown = sorted(set(runtime) - set(POLICY_RUNTIME_KEYS))
    if unknown:
        raise UserError(f"rollout.policy: unknown keys {unknown}; expected some of {list(POLICY_RUNTIME_KEYS)}")
    if hasattr(cls, "from_checkpoint"):
        if runtime:
            raise UserError(f"rollout.policy: only for the MindDrive VLA; {model_cfg['type']} runs as it is")
        policy = cls.from_checkpoint(str(ckpt), device=device) if ckpt is not None \
            else build(dict(model_cfg), MODELS, where="model")
        return policy.to(device)
    from minddrive.models.acceleration import accelerate_for_inference
    from minddrive.models.policy import MindDrivePolicy, policy_options

    if ckpt is not None:
        policy = MindDrivePolicy.from_checkpoint(str(ckpt), device=device, **policy_options(runtime))
    else:
        policy = MindDrivePolicy(build(dict(model_cfg), MODELS, where="model").eval(), device=device,
                                 **policy_options(runtime))
    return accelerate_for_inference(policy, runtime)


def policy_module(policy: Any):
    """The ``nn.Module`` holding a policy's weights (the policy itself, or ``MindDrivePolicy.model``)."""
    import torch

    inner = getattr(policy, "model", None)
    return inner if isinstance(inner, torch.nn.Module) else policy


def save_policy(policy: Any, path: str | os.PathLike, cfg: Any, meta: dict) -> None:
    """Write ``policy`` as a checkpoint directory (the model's own writer, atomically)."""
    if hasattr(policy, "save_checkpoint"):
        policy.save_checkpoint(str(path), cfg=cfg, meta=meta)
        return
    from minddrive.models.checkpoint import save_checkpoint  # the model package's writer

    save_checkpoint(path, policy_module(policy), cfg, meta=meta)


def import_object(dotted: str) -> Any:
    """``"package.module.Name"`` -> the object (config keys that name a class, e.g. rollout.controller)."""
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise UserError(f"rollout.controller: cannot import {dotted!r}") from None


__all__ = ["POLICY_RUNTIME_KEYS", "load_policy", "policy_module", "save_policy", "import_object"]
