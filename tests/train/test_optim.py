import math

import pytest
import torch

from minddrive.errors import UserError
from minddrive.train.optim import WarmupCosineSchedule, build_adamw, param_groups, vit_layer_id
from train_toy_fixtures import ToyDriver


def test_vit_layer_ids_follow_depth():
    assert vit_layer_id("img_backbone.patch_embed.weight", "img_backbone", 24, r"\.blocks\.(\d+)\.") == 0
    assert vit_layer_id("img_backbone.blocks.0.attn.qkv.weight", "img_backbone", 24, r"\.blocks\.(\d+)\.") == 1
    assert vit_layer_id("img_backbone.blocks.23.mlp.fc1.weight", "img_backbone", 24, r"\.blocks\.(\d+)\.") == 24
    assert vit_layer_id("img_backbone.norm.weight", "img_backbone", 24, r"\.blocks\.(\d+)\.") == 25
    assert vit_layer_id("projector.weight", "img_backbone", 24, r"\.blocks\.(\d+)\.") is None


def test_layer_decay_scales_and_no_decay_for_biases():
    model = ToyDriver(depth=4)
    model.set_trainable(["img_backbone", "action_expert"])
    groups = param_groups(model, lr=1.0, weight_decay=0.05, layer_decay_rate=0.9, num_layers=4)
    lr_of = {name: g["lr"] for g in groups for name in g["param_names"]}
    wd_of = {name: g["weight_decay"] for g in groups for name in g["param_names"]}
    assert lr_of["action_expert.1.weight"] == 1.0
    assert lr_of["img_backbone.blocks.3.weight"] == pytest.approx(0.9)
    assert lr_of["img_backbone.blocks.0.weight"] == pytest.approx(0.9 ** 4)
    assert lr_of["img_backbone.patch_embed.weight"] == pytest.approx(0.9 ** 5)
    assert wd_of["img_backbone.blocks.2.weight"] == 0.05
    assert wd_of["img_backbone.blocks.2.bias"] == 0.0
    assert "frozen_llm.weight" not in lr_of  # frozen parameters are not optimised at all


def test_fused_adamw_takes_the_same_step_as_foreach():
    torch.manual_seed(0)
    models = [ToyDriver(depth=2), ToyDriver(depth=2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [build_adamw(m, lr=1e-2, weight_decay=0.05, paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=2),
                              fused=fused) for m, fused in zip(models, (None, True))]
    assert optimizers[1].defaults["fused"] is True and not optimizers[0].defaults["fused"]
    x = torch.randn(4, 8)
    for model, optimizer in zip(models, optimizers):
        for _ in range(3):
            model.features(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    moved = [(a - b).abs().max() for a, b in zip(models[0].parameters(), ToyDriver(depth=2).parameters())]
    assert max(moved) > 1e-3  # the step did something
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(models[0].parameters(), models[1].parameters()))


def test_no_trainable_parameters_is_a_user_error():
    model = ToyDriver()
    model.set_trainable([])
    with pytest.raises(UserError, match="no trainable parameters"):
        build_adamw(model, lr=1e-3)


def test_warmup_cosine_values():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=8e-5)
    sched = WarmupCosineSchedule(opt, total_iters=1500, warmup_iters=500, warmup_ratio=1 / 3, min_lr_ratio=1e-3)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(1500):
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen[0] == pytest.approx(8e-5 / 3)
    assert seen[250] == pytest.approx(8e-5 * (1 / 3 + 2 / 3 * 0.5))
    assert seen[500] == pytest.approx(8e-5)
    assert seen[1000] == pytest.approx(8e-5 * (1e-3 + (1 - 1e-3) * 0.5))
    assert seen[1500] == pytest.approx(8e-5 * 1e-3)
    assert all(a >= b for a, b in zip(seen[500:], seen[501:]))  # monotone after warm-up
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=8e-5)
    sched2 = WarmupCosineSchedule(opt2, total_iters=1500, warmup_iters=500)
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(seen[1500])
    assert math.isclose(sched.factor(10_000), 1e-3)
