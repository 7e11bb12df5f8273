"""AdamW with layer-wise lr decay for the ViT, and a cosine schedule with linear warm-up.

Layer-wise decay (BEiT / EVA practice, docs/upstream.md#imitation-learning): ViT block ``i`` of ``L`` trains at
``lr * decay ** (L - i)``; the patch embedding (layer 0) at ``lr * decay ** (L + 1)``;
everything outside the backbone (LoRA, projector, heads) at the full ``lr``. Biases,
norms and other 1-D parameters get no weight decay.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import torch
from torch import nn

from minddrive.errors import UserError
from minddrive.registry import OPTIMIZERS

_BACKBONE_EMBED_NAMES = ("patch_embed", "pos_embed", "cls_token", "rope")


def vit_layer_id(name: str, backbone_prefix: str, num_layers: int, block_pattern: str) -> int | None:
    """Depth of a parameter for layer-wise decay: 0 embeddings, 1..L blocks, L+1 other backbone parts.

    Returns ``None`` for parameters outside the backbone (they keep the full lr).
    """
    if not re.search(rf"(^|\.){re.escape(backbone_prefix)}\.", name):
        return None
    match = re.search(block_pattern, name)
    if match:
        return min(int(match.group(1)) + 1, num_layers)
    if any(part in name for part in _BACKBONE_EMBED_NAMES):
        return 0
    return num_layers + 1


def param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay_rate: float = 1.0,
                 num_layers: int = 24, backbone_prefix: str = "img_backbone",
                 block_pattern: str = r"\.blocks\.(\d+)\.") -> list[dict]:
    """Split trainable parameters into groups by (lr scale, weight decay), each with its ``lr_scale``."""
    buckets: dict[tuple[float, float], list[tuple[str, nn.Parameter]]] = defaultdict(list)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = vit_layer_id(name, backbone_prefix, num_layers, block_pattern)
        scale = 1.0 if layer is None else layer_decay_rate ** (num_layers + 1 - layer)
        no_decay = param.ndim <= 1 or name.endswith(".bias") or any(k in name for k in _BACKBONE_EMBED_NAMES)
        buckets[(scale, 0.0 if no_decay else weight_decay)].append((name, param))
    if not buckets:
        raise UserError("model: no trainable parameters (check the config's `trainable` list)")
    groups = []
    for (scale, wd), named in sorted(buckets.items(), key=lambda kv: (-kv[0][0], -kv[0][1])):
        groups.append(dict(params=[p for _, p in named], param_names=[n for n, _ in named],
                           lr=lr * scale, base_lr=lr * scale, lr_scale=scale, weight_decay=wd))
    return groups


@OPTIMIZERS.register_module(name="AdamW")
def build_adamw(model: nn.Module, lr: float, weight_decay: float = 0.01, betas=(0.9, 0.999), eps: float = 1e-8,
                paramwise_cfg: dict | None = None, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters; ``paramwise_cfg`` sets the layer-wise lr decay.
    ``fused=True`` runs the update as one kernel per parameter group (torch's fused AdamW; the default
    foreach update launches several kernels per group: host time, multiplied by the layer-decay groups)."""
    groups = param_groups(model, lr, weight_decay, **(paramwise_cfg or {}))
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


class WarmupCosineSchedule:
    """Per-iteration lr factor: linear from ``warmup_ratio`` to 1 over ``warmup_iters``, then cosine to ``min_lr_ratio``.

    Each param group's lr is ``group["base_lr"] * factor`` (so layer-wise scales are kept).
    Call :meth:`step` after every optimiser step; ``state_dict`` is just the iteration.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int, warmup_iters: int = 500,
                 warmup_ratio: float = 1.0 / 3, min_lr_ratio: float = 1e-3):
        if total_iters <= 0:
            raise UserError(f"schedule: total_iters must be positive, got {total_iters}")
        self.optimizer = optimizer
        self.total_iters = int(total_iters)
        self.warmup_iters = int(min(warmup_iters, total_iters))
        self.warmup_ratio = float(warmup_ratio)
        self.min_lr_ratio = float(min_lr_ratio)
        self.iteration = 0
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self._apply()

    def factor(self, iteration: int) -> float:
        if iteration < self.warmup_iters:
            return self.warmup_ratio + (1.0 - self.warmup_ratio) * iteration / self.warmup_iters
        span = max(self.total_iters - self.warmup_iters, 1)
        progress = min((iteration - self.warmup_iters) / span, 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self) -> None:
        self.iteration += 1
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * f

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self._apply()


def build_schedule(optimizer: torch.optim.Optimizer, total_iters: int, cfg: dict | None) -> WarmupCosineSchedule:
    """``cfg``: ``dict(type="WarmupCosine", warmup_iters=500, warmup_ratio=1/3, min_lr_ratio=1e-3)``."""
    cfg = dict(cfg or {})
    kind = cfg.pop("type", "WarmupCosine")
    if kind != "WarmupCosine":
        raise UserError(f"param_scheduler.type: unknown schedule {kind!r}; expected 'WarmupCosine'")
    try:
        return WarmupCosineSchedule(optimizer, total_iters, **cfg)
    except TypeError as exc:
        raise UserError(f"param_scheduler: {exc}") from None
