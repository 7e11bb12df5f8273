"""Unit behaviour of the parts: losses with hand-computed values, the PETR frustum, the ViT, the trajectory head."""

from __future__ import annotations

import math

import pytest

import torch

from minddrive.models import losses as L
from minddrive.models.position_embedding import PETRPositionEmbedding
from minddrive.models.trajectory_head import GenerativeTrajectoryHead, gaussian_kl
from minddrive.models.vision import EVA02ViT


def test_masked_l1_ignores_masked_points():
    pred = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    gt = torch.zeros(1, 2, 2)
    assert float(L.masked_l1(pred, gt, torch.tensor([[1.0, 0.0]]))) == 1.0
    assert float(L.masked_l1(pred, gt, torch.tensor([[1.0, 1.0]]))) == 3.0


def test_map_boundary_loss_values():
    boundary = torch.tensor([[[[0.0, 2.0], [10.0, 2.0]]]])  # a line y = 2
    mask = torch.ones(1, 1, 2)
    pts = torch.tensor([[[5.0, 1.5], [5.0, 0.0], [20.0, 2.0]]])  # 0.5 m, 2 m, and 10 m (past the end)
    d = L.point_to_segments_distance(pts, boundary, mask)
    assert torch.allclose(d, torch.tensor([[0.5, 2.0, 10.0]]))
    loss = L.map_boundary_loss(pts, torch.ones(1, 3), boundary, mask, threshold=1.0)
    assert math.isclose(float(loss), 0.5 / 3, rel_tol=1e-6)  # only the first point is inside 1 m
    assert float(L.map_boundary_loss(pts, torch.ones(1, 3), boundary, torch.zeros(1, 1, 2))) == 0.0


def test_collision_loss_overlap_and_separation():
    ego = torch.zeros(1, 6, 2)
    ego_mask = torch.ones(1, 6)
    box = torch.tensor([4.0, 0.0, 4.0, 2.0, 0.0])  # 4 m ahead, same heading
    agents = box.expand(1, 1, 6, 5).clone()
    loss = L.collision_loss(ego, ego_mask, agents, torch.ones(1, 1, 6), ego_size=(4.0, 2.0), margin=0.0)
    # overlap along x: 2 + 2 - 4 = 0 -> touching boxes cost nothing
    assert float(loss) == 0.0
    agents[..., 0] = 3.0  # 1 m overlap along x, 2 m along y -> 2 m^2 per step
    loss = L.collision_loss(ego, ego_mask, agents, torch.ones(1, 1, 6), ego_size=(4.0, 2.0), margin=0.0)
    assert math.isclose(float(loss), 2.0, rel_tol=1e-6)
    agents[..., 4] = math.pi / 2  # rotated 90 deg: hull 2 x 4 -> x overlap 2 + 1 - 3 = 0
    assert float(L.collision_loss(ego, ego_mask, agents, torch.ones(1, 1, 6), (4.0, 2.0), 0.0)) < 1e-6


def test_gaussian_kl_known_value():
    zero = torch.zeros(1, 32)
    assert float(gaussian_kl(zero, zero, zero, zero)) == 0.0
    assert math.isclose(float(gaussian_kl(torch.ones(1, 32), zero, zero, zero)), 16.0, rel_tol=1e-6)


def test_set_matching_loss_is_zero_for_a_permuted_perfect_prediction():
    targets = torch.tensor([[[1.0, 2.0], [5.0, -3.0]]])
    preds = torch.tensor([[[5.0, -3.0], [9.0, 9.0], [1.0, 2.0]]])
    logits = torch.tensor([[20.0, -20.0, 20.0]])
    assert float(L.set_matching_loss(preds, logits, targets, torch.ones(1, 2))) < 1e-6
    worse = L.set_matching_loss(preds + 1.0, logits, targets, torch.ones(1, 2))
    assert math.isclose(float(worse), 1.0, rel_tol=1e-5)  # mean |error| per coordinate


def test_petr_frustum_inverts_the_projection():
    # A pinhole camera at the ego origin looking along +x (UE axes), 100 px focal, 64 x 64 image.
    k = torch.tensor([[100.0, 0, 32, 0], [0, 100.0, 32, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    ue_to_cv = torch.tensor([[0.0, 1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    lidar2img = (k @ ue_to_cv).view(1, 1, 4, 4)
    pe = PETRPositionEmbedding(embed_dim=8, depth_bins=4, depth_start=1.0, depth_max=41.0)
    pts = pe.ego_points(lidar2img, (4, 4), stride=16)  # (1, 1, 4, 4, D, 3)
    assert torch.allclose(pts[..., 0], pe.depths.view(1, 1, 1, 1, -1).expand_as(pts[..., 0]), atol=1e-4)  # x = depth
    # pixel column 3 (u = 56) is 24 px right of centre: y = 0.24 * depth
    assert torch.allclose(pts[0, 0, 0, 3, :, 1], 0.24 * pe.depths, atol=1e-4)
    assert pe(lidar2img, (4, 4), 16).shape == (1, 1, 8, 4, 4)
    assert torch.all(pe.depths[1:] - pe.depths[:-1] > 0) and math.isclose(float(pe.depths[0]), 1.0)


def test_eva02_vit_windowed_and_checkpointed():
    torch.manual_seed(0)
    vit = EVA02ViT(img_size=(64, 96), patch_size=16, embed_dim=32, depth=3, num_heads=2, window_size=2, global_every=3)
    assert [b.window for b in vit.blocks] == [2, 2, None]
    x = torch.randn(2, 3, 64, 96)
    out = vit(x)
    assert out.shape == (2, 32, 4, 6)
    # windowed attention is local: changing the top-left 2x2 patch window leaves far windows untouched before
    # the global block -> compare after the first block only
    tokens = vit.patch_embed(x).flatten(2).transpose(1, 2)
    y0 = vit.blocks[0](tokens, (4, 6))
    tokens2 = tokens.clone()
    tokens2[:, 0] += 1.0
    y1 = vit.blocks[0](tokens2, (4, 6))
    changed = (y0 - y1).abs().sum(-1)[0].view(4, 6) > 1e-6
    assert changed[:2, :2].any() and not changed[2:].any() and not changed[:, 2:].any()
    vit.train()
    vit(x).sum().backward()
    g_plain = vit.patch_embed.weight.grad.clone()
    vit.zero_grad()
    vit.grad_checkpoint = True
    vit(x).sum().backward()
    assert torch.allclose(vit.patch_embed.weight.grad, g_plain, atol=1e-5)


def test_generative_head_returns_the_prior_decode_for_the_hybrid_loss():
    torch.manual_seed(0)
    head = GenerativeTrajectoryHead(in_dim=16, hidden=32, latent_dim=8)
    h = torch.randn(3, 16)
    gt_wp, gt_path = torch.randn(3, 6, 2) * 5, torch.randn(3, 10, 2) * 5
    with torch.no_grad():
        train = head(h, h, gt_wp, torch.ones(3, 6), gt_path, torch.ones(3, 10), sample=True)
        infer = head(h, h)
    # the prior-mean decode seen in training is exactly what inference returns
    assert torch.equal(train["prior_speed_waypoints"], infer["speed_waypoints"])
    assert torch.equal(train["prior_path"], infer["path"])
    assert "prior_path" not in infer and float(infer["kl"]) == 0.0 and float(train["kl"]) > 0.0
    # the posterior decode sees the ground truth, so it differs from the prior decode
    assert (train["speed_waypoints"] - infer["speed_waypoints"]).abs().max() > 1e-3
    assert infer["path"].shape == (3, 10, 2) and infer["speed_waypoints"].shape == (3, 6, 2)


def test_set_matching_loss_matches_a_brute_force_assignment_with_gapped_masks():
    import itertools

    import torch.nn.functional as F

    torch.manual_seed(3)
    preds, logits, targets = torch.randn(3, 4, 2), torch.randn(3, 4), torch.randn(3, 3, 2)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])  # gaps, and a sample with none
    l1, matched, objectness = 0.0, 0, torch.zeros(3, 4)
    for i in range(3):
        tgt = targets[i][mask[i] > 0]
        best = min(itertools.permutations(range(4), len(tgt)),
                   key=lambda rows: sum(float((preds[i, r] - t).abs().sum()) for r, t in zip(rows, tgt)))
        l1 += sum(float((preds[i, r] - t).abs().sum()) for r, t in zip(best, tgt))
        matched += tgt.numel()
        objectness[i, list(best)] = 1.0
    expected = l1 / matched + float(F.binary_cross_entropy_with_logits(logits, objectness))
    assert float(L.set_matching_loss(preds, logits, targets, mask)) == pytest.approx(expected, rel=1e-5)


def test_windowed_attention_equals_attending_zero_padded_windows():
    """The block projects only real tokens and pads their qkv with the bias: the same as projecting the
    zero-padded grid, as the EVA-02 detection backbones do."""
    import torch.nn.functional as F

    from minddrive.models.vision import _ViTBlock

    torch.manual_seed(0)
    block, (h, w), s, c = _ViTBlock(16, 2, 8 / 3, window=4).eval(), (5, 7), 4, 16
    x = torch.randn(2, h * w, c)
    grid = F.pad(block.norm1(x).view(2, h, w, c), (0, 0, 0, 1, 0, 3))             # 5x7 -> 8x8, zeros
    windows = grid.view(2, 2, s, 2, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
    q, k, v = block.qkv(windows).view(-1, s * s, 3, 2, c // 2).permute(2, 0, 3, 1, 4)  # pad rows: qkv = bias
    att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, s * s, c)
    att = att.view(2, 2, 2, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(2, 8, 8, c)[:, :h, :w].reshape(2, h * w, c)
    y = x + block.proj(att)
    expected = y + block.mlp(block.norm2(y))
    assert torch.allclose(block(x, (h, w)), expected, atol=1e-5)
