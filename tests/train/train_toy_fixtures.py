"""A toy model and dataset following the training contracts, registered for the trainer's tests.

The model has a ViT-shaped ``img_backbone`` (patch_embed + blocks.N) so layer-wise decay has
something to act on, dropout (so RNG restore matters) and an ``action_expert`` standing in for
the LoRA. The dataset adds noise from the global torch RNG in ``__getitem__`` (so data-side RNG
restore matters too). When ``TOY_DUMP_DIR`` is set, every process writes its final trainable
weights there at exit, which is how the 2-process test compares ranks.
"""

from __future__ import annotations

import atexit
import os
import time

import torch
from torch import nn

from minddrive.registry import DATASETS, MODELS

_BUILT: list[nn.Module] = []


@MODELS.register_module(force=True)
class ToyDriver(nn.Module):
    def __init__(self, dim: int = 8, depth: int = 4, step_sleep_s: float = 0.0):
        super().__init__()
        self.img_backbone = nn.Module()
        self.img_backbone.patch_embed = nn.Linear(dim, dim)
        self.img_backbone.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.action_expert = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, 2))
        self.frozen_llm = nn.Linear(dim, dim)
        self.step_sleep_s = step_sleep_s
        _BUILT.append(self)

    def set_trainable(self, names: list[str]) -> None:
        for name, param in self.named_parameters():
            param.requires_grad = name.split(".")[0] in names

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in trainable}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.img_backbone.patch_embed(x)
        for block in self.img_backbone.blocks:
            h = h + torch.tanh(block(h))
        return self.frozen_llm(h)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        pred = self.action_expert(self.features(batch["x"]))
        return {"loss_plan": (pred - batch["y"]).pow(2).mean(), "loss_reg": 1e-3 * pred.pow(2).mean()}

    @torch.no_grad()
    def plan(self, batch: dict) -> torch.Tensor:
        """(B, 6, 2) waypoints: the 2-D prediction is the per-step displacement."""
        step = self.action_expert[1](self.features(batch["x"]))
        return step[:, None, :] * torch.arange(1, 7, dtype=step.dtype)[None, :, None]


@DATASETS.register_module(force=True)
class ToyDrivingSet(torch.utils.data.Dataset):
    """``y = A x`` with a fixed random ``A``, plus noise drawn at fetch time."""

    def __init__(self, num_samples: int = 64, dim: int = 8, noise: float = 0.01, seed: int = 123):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 2, generator=g) * 0.5
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i] + self.noise * torch.randn(self.x.shape[1]), "y": self.y[i], "index": i}


def toy_config(work_dir, **overrides):
    """A complete training config for the toy model, as an mmengine ``Config``."""
    from mmengine.config import Config

    cfg = dict(
        custom_imports=dict(imports=["train_toy_fixtures"], allow_failed_imports=False),
        seed=7, stage=2, work_dir=str(work_dir),
        model=dict(type="ToyDriver", dim=8, depth=4),
        trainable=["img_backbone", "action_expert"],
        data=dict(train=dict(type="ToyDrivingSet", num_samples=64), val=dict(type="ToyDrivingSet", num_samples=32)),
        optimizer=dict(type="AdamW", lr=3e-2, weight_decay=1e-5,
                       paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=4)),
        param_scheduler=dict(type="WarmupCosine", warmup_iters=4, warmup_ratio=1 / 3, min_lr_ratio=1e-3),
        train_cfg=dict(max_epochs=3, batch_size=4, accumulate=2, grad_clip=35.0, num_workers=0, precision="bf16"),
        strategy=dict(type="ddp"),
        log_config=dict(interval=2, tensorboard=True, progress_bar=False),
        checkpoint_config=dict(by_epoch=False, interval=4, max_keep=2),
    )
    for key, value in overrides.items():
        cfg[key] = value
    return Config(cfg)


@atexit.register
def _dump_weights() -> None:
    out = os.environ.get("TOY_DUMP_DIR")
    if out and _BUILT:
        torch.save(_BUILT[-1].trainable_state_dict(), os.path.join(out, f"rank{os.environ.get('RANK', '0')}.pt"))
