"""PETR-style 3D position embedding: every feature pixel's camera frustum, lifted to ego coordinates.

For a stride-``s`` feature map, pixel centre ``(u, v)`` is paired with ``D`` depths ``d_k`` (linear-increasing
spacing, as PETR) giving homogeneous image points ``(u d, v d, d, 1)``. ``inverse(lidar2img)`` maps them to
the ego frame; coordinates are normalised by ``pc_range`` and an MLP turns the ``D x 3`` vector into an
embedding added to the image features, so attention knows where in 3D each pixel looks.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from minddrive.registry import MODELS


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


def frustum_depths(num_bins: int, depth_start: float, depth_max: float) -> torch.Tensor:
    """Linear-increasing discretisation: bin widths grow linearly, finer near the camera."""
    index = torch.arange(num_bins, dtype=torch.float32)
    bin_size = (depth_max - depth_start) / (num_bins * (1 + num_bins))
    return depth_start + bin_size * index * (index + 1)


@MODELS.register_module()
class PETRPositionEmbedding(nn.Module):
    """Maps camera geometry to a (B, N_cam, C, h, w) embedding for stride-``stride`` feature maps."""

    def __init__(self, embed_dim: int, depth_bins: int = 32, depth_start: float = 1.0, depth_max: float = 61.0,
                 pc_range: tuple[float, ...] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)):
        super().__init__()
        self.register_buffer("depths", frustum_depths(depth_bins, depth_start, depth_max), persistent=False)
        self.register_buffer("pc_range", torch.tensor(pc_range, dtype=torch.float32), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(depth_bins * 3, embed_dim * 2), nn.ReLU(), nn.Linear(embed_dim * 2, embed_dim))

    def ego_points(self, lidar2img: torch.Tensor, feat_hw: tuple[int, int], stride: int) -> torch.Tensor:
        """Ego-frame frustum points (B, N_cam, h, w, D, 3)."""
        h, w = feat_hw
        device = lidar2img.device
        v = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
        u = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
        d = self.depths.to(device, torch.float32)  # float32 even in a model cast to bf16
        vv, uu, dd = torch.meshgrid(v, u, d, indexing="ij")  # (h, w, D)
        pix = torch.stack([uu * dd, vv * dd, dd, torch.ones_like(dd)], dim=-1)  # (h, w, D, 4)
        img2ego = torch.linalg.inv_ex(lidar2img.float()).inverse  # (B, N, 4, 4); inv_ex: no host-side error check (sync)
        pts = torch.einsum("bnij,hwdj->bnhwdi", img2ego, pix)
        return pts[..., :3]

    def forward(self, lidar2img: torch.Tensor, feat_hw: tuple[int, int], stride: int) -> torch.Tensor:
        # Geometry in float32 whatever the caller's autocast: under bf16 autocast the einsum would run as a
        # bf16 matmul, and pixel coordinates times depth (up to ~4e4) keep only ~3 significant digits there.
        kind = lidar2img.device.type
        with torch.autocast(kind, enabled=False) if kind in ("cuda", "cpu") else contextlib.nullcontext():
            pts = self.ego_points(lidar2img, feat_hw, stride)
            lo, hi = self.pc_range[:3].float(), self.pc_range[3:].float()
            norm = inverse_sigmoid((pts - lo) / (hi - lo))
        b, n, h, w = norm.shape[:4]
        emb = self.mlp(norm.reshape(b, n, h, w, -1).to(self.mlp[0].weight.dtype))  # (B, N, h, w, C)
        return emb.permute(0, 1, 4, 2, 3)
