"""Open-loop evaluation (``minddrive test``): planning L2, collision rate, meta-action accuracy.

On the validation split, for each frame:

* **decision**: the speed meta-action the model picks (argmax over the 7 speed tokens). Before
  ``minddrive convert`` the decision expert's LoRA is untrained, so the accuracy of the *action
  expert used as decision expert* (it learns the decision QA during imitation) is reported too,
  and the plan is conditioned on that decision; after conversion on the decision expert's. The
  path decision comes from navigation (``command``), as at rollout time.
* **L2** (m) between planned and ground-truth ego positions at 1, 2 and 3 s (waypoints 2, 4, 6
  of 0.5 s steps), averaged over frames where that waypoint is valid; ``l2_avg`` is their mean
  (the UniAD/VAD table convention).
* **collision rate** at 1/2/3 s: share of frames whose planned ego box (oriented along the
  direction of travel) overlaps a ground-truth agent box at any waypoint up to that time.
  Waypoints where the ground-truth ego box itself overlaps an agent (label noise, e.g. an agent
  that spawns inside the ego) are not counted, as in the ST-P3/VAD protocol.

A constant-velocity baseline (current speed held straight ahead) is scored the same way, and so is
the plan conditioned on the *labelled* decision (``model_with_labelled_decision``), which separates
planning error from decision error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from minddrive.constants import NUM_FUTURE_WAYPOINTS, SPEED_ACTIONS, WAYPOINT_DT
from minddrive.errors import UserError
from minddrive.registry import DATASETS, MODELS, build

HORIZONS_S = (1.0, 2.0, 3.0)
EGO_SIZE = (4.9, 2.1)  # length, width of the Bench2Drive ego (Lincoln MKZ 2020), metres


# ----------------------------------------------------------------------------------------------
# Metrics (numpy, pure functions of arrays: easy to test and to reuse)
# ----------------------------------------------------------------------------------------------
def horizon_index(seconds: float) -> int:
    return int(round(seconds / WAYPOINT_DT)) - 1


def constant_velocity_plan(ego_state: np.ndarray, num: int = NUM_FUTURE_WAYPOINTS) -> np.ndarray:
    """(B, num, 2): the current speed (``ego_state[:, 0]``) held along the ego x axis."""
    t = WAYPOINT_DT * np.arange(1, num + 1)
    plan = np.zeros((len(ego_state), num, 2), dtype=np.float64)
    plan[..., 0] = ego_state[:, :1] * t[None]
    return plan


def headings(points: np.ndarray) -> np.ndarray:
    """(B, T) yaw of travel at each waypoint; held from the previous one where the ego barely moves."""
    prev = np.concatenate([np.zeros_like(points[:, :1]), points[:, :-1]], axis=1)
    delta = points - prev
    yaw = np.arctan2(delta[..., 1], delta[..., 0])
    moving = np.linalg.norm(delta, axis=-1) > 0.1
    out = np.zeros(points.shape[:2])
    for t in range(points.shape[1]):
        out[:, t] = np.where(moving[:, t], yaw[:, t], out[:, t - 1] if t else 0.0)
    return out


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(..., 4, 2) corners of boxes ``[x, y, length, width, yaw]``."""
    x, y, length, width, yaw = np.moveaxis(boxes, -1, 0)
    c, s = np.cos(yaw), np.sin(yaw)
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64) * 0.5
    dx, dy = signs[:, 0] * length[..., None], signs[:, 1] * width[..., None]
    return np.stack([x[..., None] + c[..., None] * dx - s[..., None] * dy,
                     y[..., None] + s[..., None] * dx + c[..., None] * dy], axis=-1)


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Separating-axis test for oriented rectangles ``[x, y, l, w, yaw]`` (broadcast over leading dims)."""
    ca, cb = box_corners(a), box_corners(b)
    ca, cb = np.broadcast_arrays(ca, cb)
    overlap = np.ones(ca.shape[:-2], dtype=bool)
    for corners in (ca, cb):
        for edge in (corners[..., 1, :] - corners[..., 0, :], corners[..., 3, :] - corners[..., 0, :]):
            axis = edge / np.maximum(np.linalg.norm(edge, axis=-1, keepdims=True), 1e-9)
            pa = np.einsum("...kd,...d->...k", ca, axis)
            pb = np.einsum("...kd,...d->...k", cb, axis)
            overlap &= (pa.max(-1) >= pb.min(-1)) & (pb.max(-1) >= pa.min(-1))
    return overlap


def ego_collisions(plan: np.ndarray, agent_boxes: np.ndarray, agent_mask: np.ndarray,
                   ego_size: tuple[float, float] = EGO_SIZE) -> np.ndarray:
    """(B, T) whether the ego box at each planned waypoint overlaps any valid agent box at that time."""
    B, T, _ = plan.shape
    ego = np.concatenate([plan, np.full((B, T, 1), ego_size[0]), np.full((B, T, 1), ego_size[1]),
                          headings(plan)[..., None]], axis=-1)  # (B, T, 5)
    if agent_boxes.shape[1] == 0:
        return np.zeros((B, T), dtype=bool)
    hits = boxes_overlap(ego[:, None], agent_boxes[:, :, :T]) & (agent_mask[:, :, :T] > 0)  # (B, M, T)
    return hits.any(1)


class OpenLoopMetrics:
    """Accumulates L2 and collision figures of one planner over batches."""

    def __init__(self):
        self.l2_sum = np.zeros(len(HORIZONS_S))
        self.l2_count = np.zeros(len(HORIZONS_S))
        self.collided = np.zeros(len(HORIZONS_S))
        self.frames = 0

    def update(self, plan: np.ndarray, gt: np.ndarray, gt_mask: np.ndarray, agent_boxes: np.ndarray,
               agent_mask: np.ndarray) -> None:
        dist = np.linalg.norm(plan - gt, axis=-1)  # (B, T)
        hit = ego_collisions(plan, agent_boxes, agent_mask)
        gt_hit = ego_collisions(gt, agent_boxes, agent_mask)
        counted = hit & ~gt_hit & (gt_mask > 0)
        for h, seconds in enumerate(HORIZONS_S):
            i = horizon_index(seconds)
            valid = gt_mask[:, i] > 0
            self.l2_sum[h] += dist[valid, i].sum()
            self.l2_count[h] += valid.sum()
            self.collided[h] += counted[:, :i + 1].any(1).sum()
        self.frames += len(plan)

    def result(self) -> dict[str, float]:
        out = {}
        for h, seconds in enumerate(HORIZONS_S):
            tag = f"{seconds:g}s"
            out[f"l2_{tag}"] = float(self.l2_sum[h] / self.l2_count[h]) if self.l2_count[h] else math.nan
            out[f"collision_{tag}"] = float(self.collided[h] / max(self.frames, 1))
        out["l2_avg"] = float(np.mean([out[f"l2_{s:g}s"] for s in HORIZONS_S]))
        out["collision_avg"] = float(np.mean([out[f"collision_{s:g}s"] for s in HORIZONS_S]))
        return out


# ----------------------------------------------------------------------------------------------
# The model's side: decisions and plans
# ----------------------------------------------------------------------------------------------
def speed_logits(model, batch: dict, scene: torch.Tensor, adapter: str) -> torch.Tensor:
    """(B, 7) logits of the speed tokens after the decision prompt, read with ``adapter``'s LoRA.

    ``decision_expert`` is the model's own ``decision_logits``; any other adapter repeats that one
    pass with its weights (the action expert learned the same decision QA during imitation).
    """
    if adapter == "decision_expert":
        return model.decision_logits(batch, scene)
    embeds, mask = model.decision_inputs(batch, scene)
    hidden = model.run_llm(adapter, embeds, mask)
    last = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
    lm_head = model._decoder_lm[1]
    bias = lm_head.bias[model.speed_token_ids] if lm_head.bias is not None else None
    return torch.nn.functional.linear(last, lm_head.weight[model.speed_token_ids], bias).float()


@torch.inference_mode()
def predict(model, batch: dict, converted: bool) -> dict[str, torch.Tensor]:
    """Decisions of both experts and the plan conditioned on the evaluated one."""
    scene, _ = model.encode_scene(batch)
    by_decision = speed_logits(model, batch, scene, "decision_expert").argmax(-1)
    by_action = speed_logits(model, batch, scene, "action_expert").argmax(-1)
    chosen = by_decision if converted else by_action
    plan = model.plan(batch, chosen, batch["command"], scene)
    # Diagnostic: the plan given the labelled decision (teacher forcing, as in training) separates
    # planning error from decision error.
    labels = batch["speed_action"]
    oracle = model.plan(batch, torch.where(labels >= 0, labels, chosen), batch["command"], scene)
    return dict(decision_expert=by_decision, action_expert=by_action, speed_waypoints=plan["speed_waypoints"].float(),
                oracle_speed_waypoints=oracle["speed_waypoints"].float())


# ----------------------------------------------------------------------------------------------
# The evaluation
# ----------------------------------------------------------------------------------------------
def evaluate_open_loop(cfg, ckpt: str | Path, max_samples: int | None = None, batch_size: int | None = None,
                       device: str | torch.device | None = None) -> dict[str, Any]:
    """Open-loop metrics of checkpoint ``ckpt`` on ``cfg``'s validation split, with the CV baseline."""
    from minddrive.train.trainer import collate_fn_for, dataset_cfg, load_weights, resolve_checkpoint, to_device
    from minddrive.utils.io import read_json

    ckpt = resolve_checkpoint(ckpt, where="checkpoint")
    meta = read_json(ckpt / "meta.json") if (ckpt / "meta.json").is_file() else {}
    converted = bool(meta.get("converted", False))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    model = build(cfg.model, MODELS, where="model")
    load_weights(model, ckpt)
    model.to(device).eval()
    try:
        val_cfg = dict(dataset_cfg(cfg, "val"))
    except UserError:
        val_cfg = dict(dataset_cfg(cfg, "test"))
    if "stage" in val_cfg:
        # Planning targets do not depend on the QA mix; stage 2 (planning QA) keeps every frame,
        # where a stage-1 (VQA-only) split would drop frames without Chat-B2D text.
        val_cfg["stage"] = 2
    dataset = build(val_cfg, DATASETS, where="data.val")
    if max_samples is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(max_samples, len(dataset))))
    if len(dataset) == 0:
        raise UserError("data.val: the validation split is empty")
    collate = collate_fn_for(getattr(dataset, "dataset", dataset))
    bs = batch_size or int((cfg.get("test_cfg") or {}).get("batch_size", (cfg.get("train_cfg") or {}).get("batch_size", 1)))
    loader = DataLoader(dataset, batch_size=bs, shuffle=False, collate_fn=collate,
                        num_workers=int((cfg.get("train_cfg") or {}).get("num_workers", 0)))

    model_metrics, oracle_metrics, cv_metrics = OpenLoopMetrics(), OpenLoopMetrics(), OpenLoopMetrics()
    correct = {"decision_expert": 0, "action_expert": 0}
    labelled = 0
    confusion = np.zeros((len(SPEED_ACTIONS), len(SPEED_ACTIONS)), dtype=np.int64)
    for batch in _progress(loader):
        batch = to_device(batch, device)
        out = predict(model, batch, converted)
        gt = batch["ego_fut_traj"].double().cpu().numpy()
        mask = batch["ego_fut_mask"].cpu().numpy()
        boxes = batch["agent_boxes"].double().cpu().numpy()
        amask = batch["agent_mask"].cpu().numpy()
        model_metrics.update(out["speed_waypoints"].double().cpu().numpy(), gt, mask, boxes, amask)
        oracle_metrics.update(out["oracle_speed_waypoints"].double().cpu().numpy(), gt, mask, boxes, amask)
        cv_metrics.update(constant_velocity_plan(batch["ego_state"].double().cpu().numpy()), gt, mask, boxes, amask)
        labels = batch["speed_action"].cpu()
        known = labels >= 0
        labelled += int(known.sum())
        for key in correct:
            correct[key] += int((out[key].cpu()[known] == labels[known]).sum())
        chosen = out["decision_expert" if converted else "action_expert"].cpu()
        np.add.at(confusion, (labels[known].numpy(), chosen[known].numpy()), 1)

    result: dict[str, Any] = dict(
        checkpoint=str(ckpt), num_samples=model_metrics.frames, converted=converted,
        decision_source="decision_expert" if converted else "action_expert",
        model=model_metrics.result(), constant_velocity=cv_metrics.result(),
        model_with_labelled_decision=oracle_metrics.result(),
        meta_action=dict(labelled=labelled,
                         speed_acc_decision_expert=correct["decision_expert"] / labelled if labelled else math.nan,
                         speed_acc_action_expert=correct["action_expert"] / labelled if labelled else math.nan,
                         confusion=confusion.tolist()),
    )
    return _finite_or_none(result)


def _finite_or_none(obj):
    """NaN (no valid frame at a horizon) becomes ``None`` so ``--json`` prints standard JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    return obj


def _progress(loader):
    from tqdm import tqdm

    return tqdm(loader, desc="open-loop", unit="batch", leave=False, dynamic_ncols=True)


def format_table(metrics: dict[str, Any]) -> str:
    """A small text table: the model beside the constant-velocity baseline."""
    rows = [f"open-loop on {metrics['num_samples']} frames ({metrics['checkpoint']}); "
            f"plan conditioned on the {metrics['decision_source']}'s decision",
            f"{'metric':<16}{'model':>10}{'labelled-dec':>14}{'const-vel':>12}"]
    for key in metrics["model"]:
        rows.append(f"{key:<16}{_fmt(metrics['model'][key]):>10}{_fmt(metrics['model_with_labelled_decision'][key]):>14}"
                    f"{_fmt(metrics['constant_velocity'][key]):>12}")
    ma = metrics["meta_action"]
    rows.append(f"speed meta-action accuracy ({ma['labelled']} labelled): decision expert "
                f"{_fmt(ma['speed_acc_decision_expert'])}, action expert {_fmt(ma['speed_acc_action_expert'])}")
    return "\n".join(rows)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
