"""``MindDrivePolicy``: the rollout/evaluation face of the model (interfaces.py ``policy.act``).

One ``act`` call per batch of observations: the scene is encoded once, then one decision-expert pass
scores the 7 speed tokens, one value pass gives V(s), and one action-expert pass conditioned on the
chosen decision gives the path and speed waypoints. ``evaluate_decisions`` recomputes the decision
distribution and value for stored inputs *with* gradients, for PPO.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch

from minddrive.interfaces import ActOutput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RUNTIME_KEYS = ("img", "cam_intrinsic", "cam2ego", "lidar2img", "ego_state", "command", "target_point", "route",
                "prev_memory", "prev_memory_mask")


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module):
    """Dropout off (so recomputed log-probs match the rollout's), restoring the previous mode."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


class MindDrivePolicy(torch.nn.Module):
    """A thin ``nn.Module`` around :class:`~minddrive.models.minddrive.MindDrive`: ``parameters()``, ``train()``,
    ``to()``, ``state_dict()`` and DDP wrapping reach the model (held as ``self.model``); ``forward`` is
    ``evaluate_decisions`` so a DDP-wrapped policy synchronises the PPO gradients."""

    def __init__(self, model, device: str | torch.device | None = None, dtype: str | None = None):
        """``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) casts every weight, for inference: a
        bf16 model on GPU skips autocast's per-call weight casts and float32 norms (rollout/eval use).
        ``None`` keeps the model's weights as they are (training keeps float32 masters + autocast)."""
        super().__init__()
        model = model if device is None else model.to(device)
        if dtype is not None:
            if dtype not in _DTYPES:
                from minddrive.errors import UserError

                raise UserError(f"policy.dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
            model = model.to(_DTYPES[dtype])
        self.model = model

    @property
    def device(self) -> torch.device:
        return self.model.img_mean.device

    @classmethod
    def from_checkpoint(cls, directory, device: str | torch.device = "cpu") -> "MindDrivePolicy":
        from minddrive.models.checkpoint import build_model_from_checkpoint

        model, _, _ = build_model_from_checkpoint(directory, device)
        return cls(model.eval(), device)

    def set_trainable(self, names) -> None:
        """The model's trainable groups (``minddrive.models.minddrive.TRAINABLE_GROUPS``)."""
        self.model.set_trainable(names)

    def forward(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, temperature: float = 1.0):
        return self.evaluate_decisions(batch, actions, temperature)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.img_mean.dtype

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if self.dtype == torch.float32 else self.dtype)
        if self.dtype != torch.float32:
            # Float32 inputs (images, navigation features, heads' float32 joins) meet low-precision weights.
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def preprocess(self, obs_list: Sequence[dict[str, Any]], memory: dict[str, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
        """Env observations (sim/base.py keys; images at the network input size) -> a run-time batch.

        ``memory`` is the previous ``ActOutput.memory`` (omit it at an episode start).
        """
        def stack(key, dtype=np.float32):
            return torch.from_numpy(np.stack([np.asarray(o[key], dtype=dtype) for o in obs_list])).to(self.device)

        batch = {"img": stack("images").permute(0, 1, 4, 2, 3).contiguous(),  # (B, N, H, W, 3) -> (B, N, 3, H, W)
                 "cam_intrinsic": stack("cam_intrinsic"), "cam2ego": stack("cam2ego"), "lidar2img": stack("lidar2img"),
                 "ego_state": stack("ego_state"), "target_point": stack("target_point"), "route": stack("route"),
                 "command": stack("command", np.int64)}
        if memory is not None:
            batch.update({k: v.to(self.device) for k, v in memory.items()})
        return batch

    def act(self, batch: dict[str, torch.Tensor], sample: bool = True, temperature: float = 1.0,
            decision: torch.Tensor | None = None, generator: torch.Generator | None = None) -> ActOutput:
        """Decide, value and plan for a batch. ``log_probs`` are of the distribution sampled from
        (``temperature``-scaled); ``decision`` overrides the choice (e.g. replaying a stored action)."""
        with torch.inference_mode():
            out = self._act(batch, sample, temperature, decision, generator)
        # Clone outside inference mode: callers store these and later use them in autograd (PPO).
        return ActOutput(**{k: (v.clone() if torch.is_tensor(v) else {n: t.clone() for n, t in v.items()})
                            for k, v in vars(out).items() if v is not None})

    def _act(self, batch, sample, temperature, decision, generator) -> ActOutput:
        model = self.model
        with _eval_mode(model), self._autocast():
            scene, dec = model.encode_scene(batch)
            log_probs = model.decision_log_probs(batch, scene, temperature).float()
            if decision is None:
                if sample:
                    decision = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
                else:
                    decision = log_probs.argmax(-1)
            decision = decision.to(log_probs.device).long()
            value = model.value(batch, scene).float()
            path_decision = batch["command"].to(log_probs.device).long()
            plan = model.plan(batch, decision, path_decision, scene)
        memory = {"prev_memory": dec["memory"], "prev_memory_mask": dec["memory_mask"]}
        return ActOutput(decision=decision, log_probs=log_probs, value=value, path=plan["path"].float(),
                         speed_waypoints=plan["speed_waypoints"].float(), path_decision=path_decision, memory=memory)

    def evaluate_decisions(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, temperature: float = 1.0
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probs of all 7 actions (B, 7), value (B,), entropy (B,)) with gradients, dropout off.

        ``actions`` is accepted so callers can gather ``log_probs[range(B), actions]``; the full
        distribution is returned for the KL term. Reproduces ``act``'s log-probs for the same inputs.
        """
        model = self.model
        with _eval_mode(model), model.no_llm_gradient_checkpointing(), self._autocast():
            scene, _ = model.encode_scene(batch)
            log_probs = model.decision_log_probs(batch, scene, temperature).float()
            value = model.value(batch, scene).float()
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        assert actions.shape[0] == log_probs.shape[0], "actions must have one entry per batch row"
        return log_probs, value, entropy
