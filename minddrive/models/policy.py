"""``MindDrivePolicy``: the rollout/evaluation face of the model (interfaces.py ``policy.act``).

One ``act`` call per batch of observations: the scene is encoded once, then one LLM pass scores the 7
speed tokens (decision expert) and V(s) (value expert) over the same prompt, and one action-expert pass
conditioned on the chosen decision gives the path and speed waypoints. ``evaluate_decisions`` recomputes the decision
distribution and value for stored inputs *with* gradients, for PPO.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch

from minddrive.errors import UserError
from minddrive.interfaces import ActOutput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The constructor's runtime keys; the others of ``rollout.policy`` / ``agent.policy`` are speed-ups
# (``acceleration.accelerate_for_inference``).
POLICY_OPTIONS = ("dtype", "fuse_decision_value")
RUNTIME_KEYS = ("img", "cam_intrinsic", "cam2ego", "lidar2img", "ego_state", "command", "target_point", "route",
                "prev_memory", "prev_memory_mask")


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module):
    """Dropout off (so recomputed log-probs match the rollout's), restoring the previous mode. A module
    already in eval mode (rollouts, evaluation) is left alone: ``train()``/``eval()`` walk every submodule
    (thousands with the PEFT adapters), host time ``act`` would pay twice per call."""
    if not module.training:
        yield
        return
    module.eval()
    try:
        yield
    finally:
        module.train(True)


class MindDrivePolicy(torch.nn.Module):
    """A thin ``nn.Module`` around :class:`~minddrive.models.minddrive.MindDrive`: ``parameters()``, ``train()``,
    ``to()``, ``state_dict()`` and DDP wrapping reach the model (held as ``self.model``); ``forward`` is
    ``evaluate_decisions`` so a DDP-wrapped policy synchronises the PPO gradients."""

    def __init__(self, model, device: str | torch.device | None = None, dtype: str | None = None,
                 fuse_decision_value: bool = True):
        """``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) casts every weight, for inference: a
        bf16 model on GPU skips autocast's per-call weight casts and float32 norms (rollout/eval use).
        ``None`` keeps the model's weights as they are (training keeps float32 masters + autocast).

        ``fuse_decision_value`` scores the decision and the value in one LLM pass over 2B rows
        (``MindDrive.decision_and_value``) in ``act`` and ``evaluate_decisions`` alike, so PPO recomputes
        exactly what the rollout saw.
        GPU rollout configs set these under ``rollout.policy``, the leaderboard agent under ``agent.policy``, with
        the speed-ups ``minddrive.models.acceleration.accelerate_for_inference`` applies."""
        super().__init__()
        self.fuse_decision_value = fuse_decision_value
        model = model if device is None else model.to(device)
        if dtype is not None:
            if dtype not in _DTYPES:
                raise UserError(f"policy.dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
            model = model.to(_DTYPES[dtype])
        self.model = model

    @property
    def device(self) -> torch.device:
        return self.model.img_mean.device

    @classmethod
    def from_checkpoint(cls, directory, device: str | torch.device = "cpu", **runtime) -> "MindDrivePolicy":
        """``runtime``: the constructor's ``dtype``, ``fuse_decision_value`` (:data:`POLICY_OPTIONS`)."""
        from minddrive.models.checkpoint import build_model_from_checkpoint

        model, _, _ = build_model_from_checkpoint(directory, device)
        return cls(model.eval(), device, **runtime)

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

        ``memory`` is the previous ``ActOutput.memory`` (omit it at an episode start). Observations without
        ``images`` (PPO steps whose scene tokens are cached) give a batch without ``img``: it can score decisions
        from given scene tokens but not encode a scene.
        """
        def stack(key, dtype=np.float32):
            return torch.from_numpy(np.stack([np.asarray(o[key], dtype=dtype) for o in obs_list])).to(self.device)

        batch = {"cam_intrinsic": stack("cam_intrinsic"), "cam2ego": stack("cam2ego"), "lidar2img": stack("lidar2img"),
                 "ego_state": stack("ego_state"), "target_point": stack("target_point"), "route": stack("route"),
                 "command": stack("command", np.int64)}
        with_images = sum("images" in o for o in obs_list)
        if with_images == len(obs_list):
            # Images keep their own dtype (uint8 from the simulators) to the device, where the encoder casts them:
            # a quarter of the host work and of the copy of a float batch (32 worlds x 6 x 640x640: 236 MB float).
            batch["img"] = stack("images", None).permute(0, 1, 4, 2, 3).contiguous()  # (B, N, H, W, 3) -> (B, N, 3, H, W)
        elif with_images:
            raise ValueError(f"preprocess: {with_images} of {len(obs_list)} observations have images; all or none")
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
            log_probs, value = self._decision_and_value(batch, scene, temperature)
            if decision is None:
                if sample:
                    decision = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
                else:
                    decision = log_probs.argmax(-1)
            decision = decision.to(log_probs.device).long()
            path_decision = batch["command"].to(log_probs.device).long()
            plan = model.plan(batch, decision, path_decision, scene)
        memory = {"prev_memory": dec["memory"], "prev_memory_mask": dec["memory_mask"]}
        return ActOutput(decision=decision, log_probs=log_probs, value=value, path=plan["path"].float(),
                         speed_waypoints=plan["speed_waypoints"].float(), path_decision=path_decision, memory=memory)

    def _decision_and_value(self, batch, scene, temperature) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 (log-probs (B, 7), value (B,)): one fused LLM pass, or the decision and value passes."""
        if self.fuse_decision_value:
            log_probs, value = self.model.decision_and_value(batch, scene, temperature)
        else:
            log_probs, value = self.model.decision_log_probs(batch, scene, temperature), self.model.value(batch, scene)
        return log_probs.float(), value.float()

    def scene_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The scene tokens ``evaluate_decisions`` computes for ``batch``, without gradients; None where the scene
        encoder trains (its tokens then need gradients). While it is frozen (PPO's default) they depend on the
        stored observation alone, so PPO computes them once per step (``minddrive.rl.ppo.SceneCache``)."""
        if self.model.scene_encoder_trainable():
            return None
        with torch.no_grad(), _eval_mode(self.model), self._autocast():
            scene, _ = self.model.encode_scene(batch)
        return scene

    def evaluate_decisions(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, temperature: float = 1.0,
                           scene: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probs of all 7 actions (B, 7), value (B,), entropy (B,)) with gradients, dropout off.

        ``actions`` is accepted so callers can gather ``log_probs[range(B), actions]``; the full
        distribution is returned for the KL term. Reproduces ``act``'s log-probs for the same inputs.
        ``scene``: this batch's :meth:`scene_tokens`, computed earlier (the scene encoder is then not re-run).
        """
        model = self.model
        with _eval_mode(model), model.no_llm_gradient_checkpointing(), self._autocast():
            if scene is None:
                scene, _ = model.encode_scene(batch)
            log_probs, value = self._decision_and_value(batch, scene.to(self.device), temperature)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        assert actions.shape[0] == log_probs.shape[0], "actions must have one entry per batch row"
        return log_probs, value, entropy


def policy_options(runtime: dict | None) -> dict[str, Any]:
    """The keys of a runtime setting (``rollout.policy``, ``agent.policy``) that the policy's constructor takes."""
    return {k: v for k, v in dict(runtime or {}).items() if k in POLICY_OPTIONS}
