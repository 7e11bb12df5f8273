"""The contracts between layers: training batches, the policy's ``act``, checkpoints.

Environment observations and ``info`` are specified in :mod:`minddrive.sim.base`.

Training batch (``minddrive.data`` collate -> ``model.forward(batch)``), all torch tensors:
    img              float32 (B, N_cam, 3, H, W)  RGB camera images in 0..255 (CAMERA_NAMES order); the model
                                                  normalises them itself (its ``data_preprocessor`` mean/std),
                                                  so training batches and rollout observations share one path
    cam_intrinsic    float32 (B, N_cam, 3, 3)     scaled to the network input size
    cam2ego          float32 (B, N_cam, 4, 4)     UE camera axes (x forward, y right, z up) -> ego
    lidar2img        float32 (B, N_cam, 4, 4)     ego -> image pixels (network input size)
    ego_state        float32 (B, EGO_STATE_DIM)   see constants.EGO_STATE_FIELDS
    ego_history      float32 (B, T_hist, 2)       past ego positions in the current ego frame
    command          int64   (B,)                 path meta-action index from navigation
    target_point     float32 (B, 2)               next route target, ego frame
    route            float32 (B, NUM_ROUTE_POINTS, 2)  upcoming route centre line, ego frame
    input_ids        int64   (B, L)               chat-formatted conversation (right padded)
    attention_mask   int64   (B, L)
    labels           int64   (B, L)               -100 everywhere except answer tokens
    ego_fut_traj     float32 (B, 6, 2)            future ego positions at 0.5 s steps, ego frame
    ego_fut_mask     float32 (B, 6)
    path_points      float32 (B, NUM_PATH_POINTS, 2)  future path resampled every 2 m
    path_mask        float32 (B, NUM_PATH_POINTS)
    speed_action     int64   (B,)                 meta-action labels (-1 = unknown)
    path_action      int64   (B,)
    agent_boxes      float32 (B, M, 6, 5)         other agents' future boxes [x, y, length, width, yaw]
                                                  at the 6 waypoint times, ego frame (collision loss)
    agent_mask       float32 (B, M, 6)
    map_boundaries   float32 (B, K, P, 2)         road boundary polylines, ego frame (boundary loss)
    map_mask         float32 (B, K, P)
    has_planning     bool    (B,)                 sample carries a planning QA (stage 2/3)
    meta             list[dict]                   clip, frame, paths (not collated into tensors)
    prev_memory      float32 (B, K, C)  optional  query-decoder temporal memory from the previous frame
    prev_memory_mask float32 (B, K)     optional  1 = valid slot; absent or all 0 at an episode/clip start

Policy (:class:`DrivingPolicy`, :class:`TrainablePolicy` below; ``models.MindDrivePolicy``,
``rl.feature_policy.StateFeaturePolicy``):
    ``policy.preprocess(obs_list, memory=None) -> batch``  env observations -> a batch of the keys above
                                                     that are known at run time (no labels)
    ``policy.act(batch, sample=True, temperature=1.0, decision=None) -> ActOutput``
        one decision-expert pass (log-probs of the 7 speed tokens at the answer position),
        one action-expert pass conditioned on the chosen decision, one value pass;
        under ``torch.inference_mode()``.
    ``policy.evaluate_decisions(batch, actions, temperature=1.0, scene=None) -> (log_probs, value, entropy)``
    ``policy.scene_tokens(batch) -> tensor | None``   (PPO, with gradients / the frozen scene encoder's tokens)

Checkpoint directory (written atomically, ``minddrive.models.checkpoint``):
    config.py            the full config that built the model
    model.safetensors    trainable weights only (LoRA adapters, vision, projector, heads)
    meta.json            {"stage", "step", "adapters", "converted": bool, ...}
    training_state.pt    optimiser, scheduler, RNG and data-order state (only for --resume)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import torch


@dataclass
class ActOutput:
    """What one ``policy.act`` call returns for a batch of B observations."""

    decision: torch.Tensor         # int64 (B,) chosen speed meta-action index
    log_probs: torch.Tensor        # float32 (B, 7) log-probabilities of all speed meta-actions
    value: torch.Tensor            # float32 (B,) value estimate V(s)
    path: torch.Tensor             # float32 (B, NUM_PATH_POINTS, 2) spatial path, ego frame
    speed_waypoints: torch.Tensor  # float32 (B, 6, 2) future positions at 0.5 s steps, ego frame
    path_decision: torch.Tensor | None = None  # int64 (B,) path meta-action used (from navigation)
    # Temporal memory after this step, {'prev_memory': (B, K, C), 'prev_memory_mask': (B, K)}: merge it into the
    # next step's batch (``batch.update(out.memory)``); omit it at an episode start. Explicit so PPO can
    # recompute a stored step exactly.
    memory: dict[str, torch.Tensor] | None = None


@runtime_checkable
class DrivingPolicy(Protocol):
    """What drives a simulator (``minddrive.rollout.driver.PolicyDriver``, the leaderboard agent).

    A policy may also name ``obs_hook(world_view, obs) -> obs`` (observations it needs beyond the sensors,
    e.g. privileged features); the driver applies it when present.
    """

    def preprocess(self, obs_list: Sequence[dict[str, Any]], memory: dict[str, torch.Tensor] | None = None) -> Any:
        """Observations -> the policy's run-time batch. ``memory``: the previous ``ActOutput.memory`` stacked
        over the batch (``minddrive.rollout.driver.stack_memory``), ``None`` at an episode start or for a
        policy without temporal memory (which may ignore it)."""
        ...

    def act(self, batch: Any, sample: bool = True, temperature: float = 1.0,
            decision: torch.Tensor | None = None) -> ActOutput:
        """Decide, value and plan for a batch (see :class:`ActOutput`); ``decision`` replays a given choice."""
        ...


@runtime_checkable
class TrainablePolicy(DrivingPolicy, Protocol):
    """What PPO (``minddrive.rl.ppo``) needs on top of driving."""

    def evaluate_decisions(self, batch: Any, actions: torch.Tensor, temperature: float = 1.0,
                           scene: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probs of all 7 speed actions (B, 7), value (B,), entropy (B,)) with gradients; ``scene``: this
        batch's :meth:`scene_tokens` computed earlier. A policy that scores only at temperature 1 raises
        ``UserError`` for any other."""
        ...

    def scene_tokens(self, batch: Any) -> torch.Tensor | None:
        """The scene tokens ``evaluate_decisions`` would compute, without gradients, or ``None`` when there are
        none to reuse (no frozen scene encoder): PPO then caches nothing."""
        ...
