"""Checkpoint directories (interfaces.py): ``config.py`` + ``model.safetensors`` (non-base weights) + ``meta.json``
(+ ``training_state.pt`` for resuming), written atomically: the whole directory appears in one rename."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from minddrive.errors import UserError
from minddrive.utils.io import atomic_path, read_json, read_safetensors

CONFIG_FILE, WEIGHTS_FILE, META_FILE, STATE_FILE = "config.py", "model.safetensors", "meta.json", "training_state.pt"


def _as_config(cfg: Any):
    from mmengine.config import Config

    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    if "model" not in data:
        data = {"model": data}
    # minddrive.config.load_config sets ``cfg.filename``, which mmengine stores as a data key that
    # Config.fromfile then refuses ("filename is reserved"): never write it back.
    data.pop("filename", None)
    return Config(data)


def base_checksum(model) -> float:
    """A cheap fingerprint of the frozen base LLM, stored in meta to catch a base that differs on load."""
    total = 0.0
    for name, p in model.llm.named_parameters():
        if "lora_" not in name and p.device.type != "meta":
            total += float(p.detach().float().abs().mean())
    return total


def save_checkpoint(directory: str | os.PathLike, model, cfg: Any, meta: dict[str, Any] | None = None,
                    training_state: dict[str, Any] | None = None) -> Path:
    """Write ``directory`` atomically; ``cfg`` is the full config (mmengine Config or dict with ``model``)."""
    from safetensors.torch import save_file

    from minddrive.models.llm import ADAPTERS

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.trainable_state_dict().items()}
    info = {"stage": None, "step": 0, "adapters": list(ADAPTERS), "converted": False,
            "base_checksum": base_checksum(model), "num_tensors": len(state),
            "num_params": int(sum(v.numel() for v in state.values()))}
    info.update(meta or {})
    directory = Path(directory)
    with atomic_path(directory, replace_dir=True) as tmp:  # the caller's own checkpoint path
        tmp.mkdir()
        _as_config(cfg).dump(str(tmp / CONFIG_FILE))
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "minddrive"})
        import json

        (tmp / META_FILE).write_text(json.dumps(info, indent=2))
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
    return directory


def load_checkpoint(directory: str | os.PathLike) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """(config, trainable weights, meta) of a checkpoint directory."""
    from minddrive.config import load_config

    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE, META_FILE):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: not a MindDrive checkpoint (missing {name})")
    return load_config(directory / CONFIG_FILE), read_safetensors(directory / WEIGHTS_FILE), read_json(directory / META_FILE)


def build_model_from_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model from the stored config and load its weights. Returns ``(model, cfg, meta)``."""
    from minddrive.registry import MODELS, build

    cfg, state, meta = load_checkpoint(directory)
    model = build(cfg.model, MODELS, where="model")
    model.load_trainable_state_dict(state)
    stored, now = meta.get("base_checksum"), base_checksum(model)
    if stored is not None and abs(stored - now) > 1e-4 * max(1.0, abs(stored)):
        raise UserError(f"{directory}: the base LLM built from config.py differs from the one it was trained on "
                        f"(checksum {now:.6f} vs {stored:.6f}); check model.llm.pretrained / model.seed")
    return model.to(device), cfg, meta


_STEP = re.compile(r"(\d+)$")


def keep_last_k(root: str | os.PathLike, k: int, prefix: str = "iter_") -> list[Path]:
    """Delete all but the ``k`` newest ``{prefix}{step}`` checkpoint directories under ``root``; returns removed."""
    root = Path(root)
    if k <= 0 or not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP.search(path.name)
        if path.is_dir() and path.name.startswith(prefix) and match:
            found.append((int(match.group(1)), path))
    found.sort()
    removed = [p for _, p in found[:-k]]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
