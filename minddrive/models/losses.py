"""MindDrive losses (docs/upstream.md#model): L1 planning, map boundary, VAE KL (in the head), collision,
LM cross-entropy, plus the query decoder's optional set-matching auxiliary losses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid points; ``mask`` is (B, T), points are (B, T, 2)."""
    m = mask.unsqueeze(-1).to(pred.dtype)
    return ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[-1]).clamp(min=1.0)


def point_to_segments_distance(points: torch.Tensor, polylines: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Distance from each point (B, T, 2) to the nearest valid segment of (B, K, P, 2) polylines -> (B, T).

    A segment is valid when both its endpoints are (``mask`` (B, K, P)); no valid segment gives +inf.
    """
    a, b = polylines[:, :, :-1], polylines[:, :, 1:]  # (B, K, P-1, 2)
    valid = (mask[:, :, :-1] > 0) & (mask[:, :, 1:] > 0)
    ab = (b - a).unsqueeze(1)  # (B, 1, K, S, 2)
    ap = points[:, :, None, None, :] - a.unsqueeze(1)  # (B, T, K, S, 2)
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    dist = (ap - t.unsqueeze(-1) * ab).norm(dim=-1)
    dist = dist.masked_fill(~valid.unsqueeze(1), float("inf"))
    return dist.flatten(2).min(-1).values


def map_boundary_loss(points: torch.Tensor, point_mask: torch.Tensor, boundaries: torch.Tensor,
                      boundary_mask: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """Penalise planned points closer than ``threshold`` metres to a road boundary: mean of relu(thr - d)."""
    if boundaries.shape[1] == 0 or boundaries.shape[2] < 2:
        return points.new_zeros(())
    d = point_to_segments_distance(points, boundaries.to(points.dtype), boundary_mask)
    pen = F.relu(threshold - d) * point_mask
    return pen.sum() / point_mask.sum().clamp(min=1.0)


def collision_loss(ego_points: torch.Tensor, ego_mask: torch.Tensor, agent_boxes: torch.Tensor,
                   agent_mask: torch.Tensor, ego_size: tuple[float, float] = (4.9, 2.1),
                   margin: float = 0.5) -> torch.Tensor:
    """Overlap of the planned ego box with each agent's box at the same waypoint time.

    Boxes are compared along the ego-frame axes: the agent box [x, y, length, width, yaw] is replaced by its
    axis-aligned hull and the ego box keeps the ego heading (an approximation that is exact for agents
    aligned with the ego and conservative otherwise). The penalty is the product of the two axis overlaps
    (m^2, including ``margin``), zero once the boxes separate on either axis.
    """
    if agent_boxes.shape[1] == 0:
        return ego_points.new_zeros(())
    boxes = agent_boxes.to(ego_points.dtype)
    c, s = boxes[..., 4].cos().abs(), boxes[..., 4].sin().abs()
    half_x = 0.5 * (boxes[..., 2] * c + boxes[..., 3] * s)
    half_y = 0.5 * (boxes[..., 2] * s + boxes[..., 3] * c)
    d = (ego_points.unsqueeze(1) - boxes[..., :2]).abs()  # (B, M, 6, 2)
    over_x = F.relu(half_x + 0.5 * ego_size[0] + margin - d[..., 0])
    over_y = F.relu(half_y + 0.5 * ego_size[1] + margin - d[..., 1])
    m = agent_mask * ego_mask.unsqueeze(1)
    return (over_x * over_y * m).sum() / ego_mask.sum().clamp(min=1.0)


def planning_losses(out: dict[str, torch.Tensor], gt_waypoints: torch.Tensor, waypoint_mask: torch.Tensor,
                    gt_path: torch.Tensor, path_mask: torch.Tensor, boundaries: torch.Tensor,
                    boundary_mask: torch.Tensor, agent_boxes: torch.Tensor, agent_mask: torch.Tensor,
                    boundary_threshold: float, ego_size: tuple[float, float], collision_margin: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L1 to the expert's plan, map-boundary penalty, collision penalty) of the trajectory head's ``out``.

    With the hybrid CVAE objective (``prior_*`` in ``out``, trajectory_head.py) the L1 also fits the prior-mean
    decode that ``plan`` returns, and the boundary/collision terms shape that executed plan. One function, so
    ``MindDrive.compile_regions`` can fuse its ~100 small ops and their backward (launched one by one, they
    kept the GPU waiting for the host between the LLM's forward and backward).
    """
    wp, path = out["speed_waypoints"], out["path"]
    plan_l1 = masked_l1(wp, gt_waypoints, waypoint_mask) + masked_l1(path, gt_path, path_mask)
    if "prior_speed_waypoints" in out:
        wp, path = out["prior_speed_waypoints"], out["prior_path"]
        plan_l1 = 0.5 * (plan_l1 + masked_l1(wp, gt_waypoints, waypoint_mask) + masked_l1(path, gt_path, path_mask))
    boundary = (map_boundary_loss(wp, waypoint_mask, boundaries, boundary_mask, boundary_threshold)
                + map_boundary_loss(path, path_mask, boundaries, boundary_mask, boundary_threshold))
    collision = collision_loss(wp, waypoint_mask, agent_boxes, agent_mask, ego_size, collision_margin)
    return plan_l1, boundary, collision


def lm_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over positions whose label is not -100 (0 when there are none)."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    if not (shift_labels != -100).any():
        return shift_logits.sum() * 0.0
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100)


class MatchingCosts:
    """The host copy of a set-matching problem's L1 cost of ``pred_points`` (B, N, D) against ``targets``
    (B, M, D), queued without waiting for the GPU.

    The assignment runs on the host (scipy). Reading the costs there is a sync: the host waits for everything
    queued so far, and the GPU then idles while the host launches what follows. Started right after the
    query decoder, the copy is queued behind the decoder alone; by the time the losses need it, the GPU has
    long finished it and is busy with the LLM, so :meth:`wait` returns without draining the queue.
    """

    def __init__(self, pred_points: torch.Tensor, targets: torch.Tensor, target_mask: torch.Tensor):
        cost = torch.cdist(pred_points.detach().float(), targets.detach().float(), p=1)  # (B, N, M)
        valid = target_mask.detach() > 0
        if cost.device.type == "cuda":
            self.cost = torch.empty(cost.shape, dtype=cost.dtype, pin_memory=True).copy_(cost, non_blocking=True)
            self.valid = torch.empty(valid.shape, dtype=valid.dtype, pin_memory=True).copy_(valid, non_blocking=True)
            self.ready: torch.cuda.Event | None = torch.cuda.Event()
            self.ready.record()
        else:
            self.cost, self.valid, self.ready = cost, valid, None

    def wait(self) -> tuple[np.ndarray, np.ndarray]:
        if self.ready is not None:
            self.ready.synchronize()  # waits for the copies only, not for work queued after them
        return self.cost.numpy(), self.valid.numpy()


def set_matching_loss(pred_points: torch.Tensor, pred_logits: torch.Tensor, targets: torch.Tensor,
                      target_mask: torch.Tensor, costs: MatchingCosts | None = None) -> torch.Tensor:
    """Hungarian-matched L1 (+ objectness BCE) between N predictions and up to M targets, per sample.

    ``pred_points`` (B, N, D), ``pred_logits`` (B, N), ``targets`` (B, M, D), ``target_mask`` (B, M);
    ``costs``: a :class:`MatchingCosts` of the same tensors, started earlier (else started here).
    """
    from scipy.optimize import linear_sum_assignment

    device = pred_points.device
    cost, valid = (costs or MatchingCosts(pred_points, targets, target_mask)).wait()
    matches = []                                     # (sample, prediction, target slot)
    for i in range(pred_points.shape[0]):
        slots = np.flatnonzero(valid[i])
        if slots.size:
            rows, cols = linear_sum_assignment(cost[i][:, slots])
            matches += zip([i] * len(rows), rows.tolist(), slots[cols].tolist())
    objectness = torch.zeros_like(pred_logits)
    total = pred_points.new_zeros(())
    if matches:
        index = torch.tensor(matches, dtype=torch.long)
        if device.type == "cuda":  # from pinned memory: an asynchronous copy, no wait for the GPU
            index = index.pin_memory()
        b, p, t = index.to(device, non_blocking=True).T
        total = (pred_points[b, p] - targets[b, t].to(pred_points.dtype)).abs().sum()
        objectness = objectness.index_put((b, p), objectness.new_ones(()))
    matched = int(valid.sum()) * targets.shape[-1]
    bce = F.binary_cross_entropy_with_logits(pred_logits.float(), objectness.float())
    return total / max(matched, 1) + bce
