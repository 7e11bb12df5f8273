"""The inference fast paths of issue #10 give the numbers of the plain paths: decision + value in one LLM pass
(``MindDrive.decision_and_value``), the prebuilt 4-D mask the CUDA-graph runner feeds the LLM, and the ViT's
window/global attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from minddrive.models import acceleration as acc
from minddrive.models.acceleration import DecoderGraphs, SceneGraphs, accelerate_for_inference, fast_paths
from minddrive.models.minddrive import causal_padding_mask
from minddrive.models.policy import MindDrivePolicy


def _perturb(model, adapter: str, seed: int, scale: float = 0.5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if f".{adapter}." in name and "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def _distinct_adapters(model) -> None:
    for adapter, seed in (("decision_expert", 1), ("value_expert", 2), ("action_expert", 3)):
        _perturb(model, adapter, seed)
    torch.nn.init.normal_(model.value_head.weight, std=0.5)


def test_decision_and_value_in_one_pass_equal_two_passes(tiny_model, batch_factory):
    _distinct_adapters(tiny_model)
    tiny_model.eval()
    batch = batch_factory(tiny_model.tokenizer, batch_size=3, seed=4)
    batch["command"] = torch.tensor([0, 3, 5])  # different prompt lengths -> different last positions
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(batch)
        log_probs = tiny_model.decision_log_probs(batch, scene, temperature=0.7)
        value = tiny_model.value(batch, scene)
        fused_lp, fused_value = tiny_model.decision_and_value(batch, scene, temperature=0.7)
        # Swapping the blocks' adapters must change both outputs: the split really routes rows.
        embeds, mask = tiny_model.decision_inputs(batch, scene)
        swapped = tiny_model.run_llm(("value_expert", "decision_expert"), torch.cat([embeds, embeds]),
                                     torch.cat([mask, mask]))
        plain = tiny_model.run_llm("decision_expert", embeds, mask)
    assert torch.allclose(fused_lp, log_probs, atol=1e-5) and torch.allclose(fused_value, value, atol=1e-5)
    assert (log_probs.exp().max(-1).values > 0.2).all() and value.abs().max() > 1e-2  # not degenerate
    assert (swapped[:3] - plain).abs().max() > 1e-2 and torch.allclose(swapped[3:], plain, atol=1e-5)
    # The layers are back to one active adapter, with no hook left behind.
    assert all(not layer._forward_hooks for layer in tiny_model._lora_layers)
    with torch.no_grad():
        assert torch.equal(tiny_model.run_llm("decision_expert", embeds, mask), plain)


def test_fused_and_two_pass_policies_agree_in_act_and_gradients(tiny_model, batch_factory):
    _distinct_adapters(tiny_model)
    batch = batch_factory(tiny_model.tokenizer, batch_size=2, seed=6)
    fused, split = MindDrivePolicy(tiny_model), MindDrivePolicy(tiny_model, fuse_decision_value=False)
    a, b = fused.act(batch, sample=False), split.act(batch, sample=False)
    assert torch.allclose(a.log_probs, b.log_probs, atol=1e-5) and torch.allclose(a.value, b.value, atol=1e-5)
    assert torch.equal(a.decision, b.decision) and torch.allclose(a.path, b.path, atol=1e-5)

    tiny_model.set_trainable(("decision_expert", "value_expert", "value_head"))
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    grads = []
    for policy in (fused, split):
        log_probs, value, entropy = policy.evaluate_decisions(batch, a.decision)
        loss = -log_probs[torch.arange(2), a.decision].sum() + (value ** 2).sum() - 0.1 * entropy.sum()
        grads.append(torch.autograd.grad(loss, params))
    assert sum(float(g.abs().sum()) for g in grads[0]) > 1e-3  # both adapters and the head receive gradient
    for g_fused, g_split in zip(*grads):
        assert torch.allclose(g_fused, g_split, atol=1e-5, rtol=1e-4)


def test_graph_runner_mask_equals_padding_mask_and_is_eager_off_cuda(tiny_model, batch_factory):
    _distinct_adapters(tiny_model)
    tiny_model.eval()
    batch = batch_factory(tiny_model.tokenizer, batch_size=2, seed=8)
    batch["command"] = torch.tensor([1, 4])
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(batch)
        embeds, mask = tiny_model.decision_inputs(batch, scene)
        assert (mask == 0).any()  # right padding present: the 4-D mask must hide it
        reference = tiny_model.decoder_forward(("decision_expert",), embeds, mask)
        full = causal_padding_mask(mask)
        assert full.shape == (2, 1, mask.shape[1], mask.shape[1]) and full.dtype == torch.bool
        prebuilt = tiny_model.decoder_forward(("decision_expert",), embeds, full)
        valid = mask.bool()
        assert torch.allclose(prebuilt[valid], reference[valid], atol=1e-5)
        acc.use_cuda_graphs(tiny_model)
        runner = fast_paths(tiny_model).decoder_graphs
        try:
            through_runner = tiny_model.run_llm("decision_expert", embeds, mask)
        finally:
            acc.use_cuda_graphs(tiny_model, False)
    assert torch.equal(through_runner, reference) and not runner.graphs  # CPU: eager, nothing captured
    assert fast_paths(tiny_model) is None and "decoder_forward" not in vars(tiny_model)  # the model is plain again
    policy = accelerate_for_inference(MindDrivePolicy(tiny_model), dict(cuda_graphs=True))
    fast = fast_paths(tiny_model)
    assert isinstance(fast.decoder_graphs, DecoderGraphs) and isinstance(fast.scene_graphs, SceneGraphs)
    out = policy.act(batch, sample=False)
    assert out.log_probs.shape == (2, 7)
    assert not fast.scene_graphs.graphs and not fast.scene_graphs.failures  # CPU: eager
    accelerate_for_inference(MindDrivePolicy(tiny_model), {})
    assert fast_paths(tiny_model) is None
    assert not {"encode_scene", "decoder_forward", "lora_routing"} & set(vars(tiny_model))


def test_scene_graph_runner_is_eager_off_cuda_and_compiled_policy_acts_the_same(tiny_model, batch_factory):
    tiny_model.eval()
    batch = batch_factory(tiny_model.tokenizer, batch_size=2, seed=9)
    with torch.no_grad():
        reference, ref_dec = tiny_model.encode_scene(batch)
        runner = SceneGraphs()
        scene, dec = runner(batch, tiny_model.encode_scene)
    assert torch.equal(scene, reference) and set(dec) == set(ref_dec) and not runner.graphs
    eager = MindDrivePolicy(tiny_model).act(batch, sample=False)
    try:
        compiled = accelerate_for_inference(MindDrivePolicy(tiny_model), dict(compile="aot_eager")).act(
            batch, sample=False)
        assert tiny_model._decoder_lm[0].layers[0]._compiled_call_impl is not None
    finally:
        acc.decompile_regions(tiny_model)
    assert torch.equal(compiled.decision, eager.decision)
    assert torch.allclose(compiled.log_probs, eager.log_probs, atol=1e-5)
    assert torch.allclose(compiled.path, eager.path, atol=1e-4)


def test_vit_regional_compilation_keeps_names_values_and_gradients():
    from minddrive.models.vision import EVA02ViT

    torch.manual_seed(0)
    # 5x7 patches, window 4: the windowed block pads to 8x8; the second block is global.
    eager = EVA02ViT(img_size=(80, 112), embed_dim=32, depth=2, num_heads=2, window_size=4, global_every=2)
    compiled = EVA02ViT(img_size=(80, 112), embed_dim=32, depth=2, num_heads=2, window_size=4, global_every=2)
    compiled.load_state_dict(eager.state_dict())
    acc.compile_vit_blocks(compiled, backend="aot_eager")  # the plumbing of inductor's path, without a C++ build
    assert acc.vit_blocks_compiled(compiled) and list(compiled.state_dict()) == list(eager.state_dict())
    images = torch.randn(2, 3, 80, 112)
    ref, out = eager(images), compiled(images)
    assert out.shape == (2, 32, 5, 7) and torch.allclose(out, ref, atol=1e-5)
    ref.square().sum().backward()
    out.square().sum().backward()
    w_ref, w_out = eager.blocks[0].mlp.w12.weight.grad, compiled.blocks[0].mlp.w12.weight.grad
    assert w_ref.abs().sum() > 0 and torch.allclose(w_out, w_ref, atol=1e-4, rtol=1e-4)


def test_vit_decompile_restores_eager_forward():
    from minddrive.models.vision import EVA02ViT

    vit = EVA02ViT(img_size=(32, 32), embed_dim=16, depth=1, num_heads=2, window_size=2, global_every=2)
    acc.compile_vit_blocks(vit, backend="eager")
    assert vit.blocks[0]._compiled_call_impl is not None
    acc.decompile_vit_blocks(vit)
    assert vit.blocks[0]._compiled_call_impl is None and not acc.vit_blocks_compiled(vit)


@pytest.mark.parametrize("compiled", [False, True])  # compiled: the sub-LayerNorm runs as padded_norm
def test_vit_mlp_padded_to_aligned_width_matches_unpadded_values_and_gradients(compiled):
    from minddrive.models.vision import _SwiGLU

    torch.manual_seed(0)
    mlp = _SwiGLU(24, 85)  # 85 -> padded to 96, as 2730 -> 2752 on the real ViT
    with torch.no_grad():
        mlp.norm.weight.uniform_(0.5, 1.5), mlp.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(5, 24, requires_grad=True)
    mlp.pad_hidden = False
    ref = mlp(x)
    (ref * torch.arange(24.0)).sum().backward()
    ref_grads = [p.grad.clone() for p in mlp.parameters()] + [x.grad.clone()]
    mlp.zero_grad()
    x.grad = None
    mlp.pad_hidden = True
    out = (torch.compile(mlp, backend="eager") if compiled else mlp)(x)
    (out * torch.arange(24.0)).sum().backward()
    grads = [p.grad for p in mlp.parameters()] + [x.grad]
    assert torch.allclose(out, ref, atol=1e-5)
    assert [g.shape for g in grads] == [g.shape for g in ref_grads] and mlp.w12.weight.shape == (170, 24)
    assert all(torch.allclose(g, r, atol=1e-5) for g, r in zip(grads, ref_grads))
    assert ref_grads[0].abs().sum() > 0


def test_vit_mlp_padded_norm_normalises_over_the_real_units_and_keeps_pad_units_zero():
    from minddrive.models.vision import _SwiGLU

    torch.manual_seed(0)
    mlp = _SwiGLU(8, 85)
    with torch.no_grad():
        mlp.norm.weight.uniform_(0.5, 1.5), mlp.norm.bias.uniform_(-0.5, 0.5)
    gated = torch.randn(4, 85) * 3 + 2  # a mean far from 0, where a pad-count error would show
    out = mlp.padded_norm(F.pad(gated, (0, 11)), 11)
    assert out.shape == (4, 96) and out[:, 85:].abs().max() == 0
    assert torch.allclose(out[:, :85], mlp.norm(gated), atol=1e-5)


def test_vit_patch_matmul_equals_the_strided_convolution_in_values_and_gradients():
    from minddrive.models.vision import EVA02ViT

    torch.manual_seed(0)
    vit = EVA02ViT(img_size=(32, 40), patch_size=8, embed_dim=16, depth=1, num_heads=2, window_size=2, global_every=2)
    images = torch.randn(2, 3, 36, 43, requires_grad=True)  # remainders the strided conv drops: 4 rows, 3 columns
    results = []
    for matmul in (False, True):
        vit.patch_matmul = matmul
        vit.zero_grad()
        images.grad = None
        tokens, grid = vit.embed_patches(images)
        (tokens * torch.linspace(-1, 1, 16)).sum().backward()
        results.append((tokens, grid, vit.patch_embed.weight.grad.clone(), images.grad.clone()))
    (conv, conv_grid, conv_wgrad, conv_igrad), (mm, mm_grid, mm_wgrad, mm_igrad) = results
    assert conv_grid == mm_grid == (4, 5) and conv.shape == mm.shape == (2, 20, 16)
    assert torch.allclose(mm, conv, atol=1e-5) and conv.abs().max() > 0.1
    assert torch.allclose(mm_wgrad, conv_wgrad, atol=1e-4) and torch.allclose(mm_igrad, conv_igrad, atol=1e-5)
    assert mm_igrad[:, :, 32:].abs().max() == 0  # the dropped rows get no gradient either way


def test_graph_cache_replays_into_static_copies_and_stays_eager_after_a_failed_capture(monkeypatch):
    """The caching, copying and fallback logic shared by DecoderGraphs and SceneGraphs, with the CUDA capture
    replaced by a stand-in that replays ``run`` into the captured outputs (as a graph rewrites them)."""
    policy_module = acc

    def fake_capture(run, device, warmup):
        outputs = run()

        class Graph:
            def replay(self):
                for out, new in zip(outputs, run()):
                    out.copy_(new)
        return Graph(), outputs

    monkeypatch.setattr(policy_module, "capture_graph", fake_capture)
    cache = policy_module.GraphCache(max_graphs=1)
    run = lambda s: (s["x"] * 2, s["x"] + 1)  # noqa: E731
    first = cache.replay("k", {"x": torch.ones(3)}, run)
    second = cache.replay("k", {"x": torch.full((3,), 5.0)}, run)
    assert torch.equal(second[0], torch.full((3,), 10.0)) and torch.equal(second[1], torch.full((3,), 6.0))
    assert torch.equal(first[0], torch.full((3,), 2.0))  # a clone: the later replay did not overwrite it
    assert cache.replay("other", {"x": torch.ones(3)}, run) is None and list(cache.graphs) == ["k"]  # over max_graphs

    def sync_while_capturing(static):
        raise RuntimeError("operation not permitted when stream is capturing")

    failing = policy_module.GraphCache()
    assert failing.replay("k", {"x": torch.ones(1)}, sync_while_capturing) is None
    assert failing.failures["k"].startswith("RuntimeError: operation not permitted") and not failing.graphs
    assert failing.replay("k", {"x": torch.ones(1)}, run) is None  # stays eager


def test_merged_adapters_give_the_unmerged_numbers_and_follow_adapter_updates(tiny_model, batch_factory):
    _distinct_adapters(tiny_model)
    batch = batch_factory(tiny_model.tokenizer, batch_size=3, seed=12)
    batch["command"] = torch.tensor([0, 2, 5])
    unmerged = MindDrivePolicy(tiny_model).act(batch, sample=False)
    policy = accelerate_for_inference(MindDrivePolicy(tiny_model), dict(merge_adapters=True))
    merged = fast_paths(tiny_model).merged
    assert merged is not None and merged.weights[0].shape[0] == 3  # action, decision, value
    out = policy.act(batch, sample=False)
    assert torch.equal(out.decision, unmerged.decision)
    assert torch.allclose(out.log_probs, unmerged.log_probs, atol=1e-5)
    assert torch.allclose(out.value, unmerged.value, atol=1e-5) and torch.allclose(out.path, unmerged.path, atol=1e-4)
    # nothing left behind: the layers' own class and no merged weight attribute
    assert all(not type(layer).__name__.startswith("Merged") and "merged_weight" not in layer.__dict__
               for layer in tiny_model._lora_layers)

    # An in-place adapter update (an optimiser step) is picked up at the next pass; no update, no re-merge.
    assert not merged.refresh()
    _perturb(tiny_model, "decision_expert", seed=21)
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(batch)
        fresh = tiny_model.decision_and_value(batch, scene)
        fast_paths(tiny_model).merged = None
        reference = tiny_model.decision_and_value(batch, scene)
        fast_paths(tiny_model).merged = merged
    assert torch.allclose(fresh[0], reference[0], atol=1e-5) and (fresh[0] - out.log_probs).abs().max() > 1e-3

    # With gradients the unmerged adapters run, so PPO's gradients still reach the LoRA weights.
    tiny_model.set_trainable(("decision_expert",))
    log_probs, _, _ = policy.evaluate_decisions(batch, out.decision)
    log_probs[:, 0].sum().backward()
    lora_grads = [p.grad for n, p in tiny_model.llm.named_parameters() if ".decision_expert." in n]
    assert all(g is not None for g in lora_grads) and sum(float(g.abs().sum()) for g in lora_grads) > 0
    accelerate_for_inference(MindDrivePolicy(tiny_model), {})
    assert fast_paths(tiny_model) is None


def test_merged_row_split_routes_each_block_through_its_own_adapter(tiny_model, batch_factory):
    _distinct_adapters(tiny_model)
    tiny_model.eval()
    batch = batch_factory(tiny_model.tokenizer, batch_size=2, seed=13)
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(batch)
        embeds, mask = tiny_model.decision_inputs(batch, scene)
        rows, rows_mask = torch.cat([embeds, embeds]), torch.cat([mask, mask])
        references = {order: tiny_model.decoder_forward(order, rows, rows_mask)
                      for order in (("decision_expert", "value_expert"), ("value_expert", "action_expert"))}
        acc.merge_adapters(tiny_model)
        try:
            for order, reference in references.items():  # a stacked view, and an out-of-order copy
                assert torch.allclose(tiny_model.decoder_forward(order, rows, rows_mask), reference, atol=2e-4)
        finally:
            acc.merge_adapters(tiny_model, False)
    assert (references[("decision_expert", "value_expert")][:2] - references[("value_expert", "action_expert")][:2]
            ).abs().max() > 1e-2


def test_vit_float8_inference_approximates_the_real_weights_and_training_keeps_them():
    from minddrive.models.vision import FLOAT8, EVA02ViT

    torch.manual_seed(0)
    vit = EVA02ViT(img_size=(64, 64), patch_size=8, embed_dim=64, depth=3, num_heads=4, window_size=4, global_every=3)
    images = torch.randn(2, 3, 64, 64)
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min()  # noqa: E731
    with torch.no_grad():
        reference = vit(images)
        vit.use_float8()
        assert vit.blocks[0].float8["qkv"][0].dtype == FLOAT8
        assert vit.blocks[0].mlp.float8["w12"][0].shape == (2 * 192, 64)  # hidden 170 padded to 192 for float8
        approx = vit(images)
    assert cos(approx, reference) > 0.99 and (approx - reference).abs().max() > 1e-3  # close, and really float8
    assert torch.equal(vit(images), reference)  # with gradients (training): the real weights

    held = vit.blocks[1].mlp.float8["w3"][0]
    with torch.no_grad():  # an in-place weight update is re-quantised (in place) at the next gradient-free forward
        vit.blocks[1].mlp.w3.weight.mul_(-1)
        changed = vit(images)
        assert vit.blocks[1].mlp.float8["w3"][0] is held  # graphs captured over it replay the new weights
        vit.use_float8(False)
        exact = vit(images)
    assert cos(changed, exact) > 0.99 and cos(changed, reference) < 0.99
    assert vit.blocks[0].float8 is None and vit.blocks[0].mlp.float8 is None


def test_policy_float8_needs_a_backbone_with_a_float8_path(tiny_model):
    import pytest

    from minddrive.errors import UserError

    with pytest.raises(UserError, match="vit_float8: the SmallCNN backbone has no float8 path"):
        accelerate_for_inference(MindDrivePolicy(tiny_model), dict(vit_float8=True))


def test_merged_adapters_compile_once_for_all_llm_layers(tiny_cfg, batch_factory):
    """A compiled decoder layer must trace once for every layer: per-layer objects in the merged path (a guard
    each) recompiled per layer and hit dynamo's limit on the 24-layer 0.5B, silently falling back to eager."""
    import copy

    import torch._dynamo
    from torch._dynamo.utils import counters

    from tests.models.conftest import build_tiny

    graphs = []
    for layers in (2, 4):
        cfg = copy.deepcopy(tiny_cfg)
        cfg.model.llm.config.num_hidden_layers = layers
        torch.manual_seed(0)
        model = build_tiny(cfg).eval()
        policy = accelerate_for_inference(MindDrivePolicy(model), dict(merge_adapters=True, compile="eager"))
        torch._dynamo.reset()
        counters.clear()
        try:
            policy.act(batch_factory(model.tokenizer, batch_size=2, seed=14), sample=False)
        finally:
            acc.decompile_regions(model)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] == graphs[1] > 0, graphs


def test_compiled_trajectory_head_is_one_graph_with_the_eager_values_and_gradients(tiny_model):
    """nn.GRU breaks a Dynamo graph unless it may unroll it; ``acceleration.compile_regions`` lets it, so the
    head's four GRU decodes compile into the head's one graph instead of running eager between five small ones."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    head = tiny_model.trajectory_head
    in_dim = head.speed.cond[0].in_features
    torch.manual_seed(3)
    args = (torch.randn(2, in_dim), torch.randn(2, in_dim), torch.randn(2, 6, 2), torch.ones(2, 6),
            torch.randn(2, head.path.steps, 2), torch.ones(2, head.path.steps))

    def run():
        out = head(*args, sample=False)
        (out["speed_waypoints"].sum() + out["prior_path"].square().sum() + out["kl"]).backward()
        grads = [p.grad.clone() for p in head.parameters()]
        head.zero_grad(set_to_none=True)
        return out, grads

    eager, eager_grads = run()
    torch._dynamo.reset()
    counters.clear()
    acc.compile_regions(tiny_model, backend="aot_eager")
    try:
        compiled, compiled_grads = run()
    finally:
        acc.decompile_regions(tiny_model)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters["graph_break"])
    for key in ("speed_waypoints", "path", "prior_path", "kl"):
        assert torch.allclose(compiled[key], eager[key], atol=1e-5), key
    assert all(torch.allclose(c, e, atol=1e-5) for c, e in zip(compiled_grads, eager_grads))
    assert eager_grads[0].abs().sum() > 0


def _graph_nodes(tensor: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize("autocast", [False, True])
def test_row_split_layer_equals_each_adapter_alone_and_adds_out_of_place(tiny_model, autocast):
    """One LoRA layer inside ``RowAdapterSplit``: block i of the rows equals the layer run with adapter i alone,
    outputs and adapter gradients, in float32 and under bf16 autocast (where x is not cast to the float32
    adapter weights first); the updates join out of place (no ``CopySlices``: an in-place add into each block
    made autograd copy the whole output gradient per block)."""
    from minddrive.models.llm import RowAdapterSplit

    _distinct_adapters(tiny_model)
    layer = tiny_model._lora_layers[0]
    adapters = ("decision_expert", "value_expert")
    lora_params = [p for name in adapters for p in (layer.lora_A[name].weight, layer.lora_B[name].weight)]
    for p in lora_params:
        p.requires_grad_(True)
    x = torch.randn(4, 5, layer.in_features, generator=torch.Generator().manual_seed(0))
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with context:
        with RowAdapterSplit([layer], adapters):
            split = layer(x)
        saved, alone = layer._active_adapter, []
        for i, name in enumerate(adapters):
            layer._active_adapter = [name]
            alone.append(layer(x[2 * i:2 * i + 2]))
        layer._active_adapter = saved
        alone = torch.cat(alone)
    assert split.dtype == (torch.bfloat16 if autocast else torch.float32)
    assert torch.allclose(split.float(), alone.float(), atol=1e-6 if not autocast else 1e-2, rtol=0)
    assert (split[:2] - split[2:]).abs().max() > 1e-3  # the two blocks did go through different adapters
    assert "CopySlices" not in _graph_nodes(split)
    grads_split = torch.autograd.grad(split.float().square().sum(), lora_params)
    grads_alone = torch.autograd.grad(alone.float().square().sum(), lora_params)
    for g_split, g_alone in zip(grads_split, grads_alone):
        assert g_split.abs().sum() > 0
        assert torch.allclose(g_split, g_alone, rtol=2e-2 if autocast else 1e-5, atol=1e-3 if autocast else 1e-6)


def test_the_model_file_holds_the_architecture_alone():
    """Speed-ups live in ``models/acceleration.py``, applied from outside; ``models/minddrive.py`` stays eager."""
    import re
    from pathlib import Path

    import minddrive.models.minddrive as architecture

    text = Path(architecture.__file__).read_text()
    banned = ["torch.compile", "torch.compiler", "_dynamo", "compile", "cudagraph", "CUDAGraph", "cuda.graph",
              "graphs", "float8", "merge", "Merged", "store_frozen", "frozen_llm_dtype", "bfloat16", "fast path"]
    found = sorted({token for token in banned if re.search(re.escape(token), text, flags=re.IGNORECASE)})
    assert not found, f"acceleration code in models/minddrive.py: {found}"
    # The module imports nothing that speeds it up either.
    assert "acceleration" not in text
