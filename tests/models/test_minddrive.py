"""Model behaviour on the tiny config: shapes, the one-pass decision, adapters, frozen base, memory, the policy
module, the generation baseline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import torch

from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS
from minddrive.errors import UserError
from minddrive.models.acceleration import fast_paths
from minddrive.models.policy import MindDrivePolicy


def perturb_adapter(model, adapter: str, scale: float = 0.5, seed: int = 1) -> None:
    """LoRA B starts at zero (every adapter = base); give ``adapter`` non-trivial weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if f".{adapter}." in name and "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def test_forward_losses_and_act_shapes(shared_model, batch_factory):
    tiny_model = shared_model
    tiny_batch = batch_factory(tiny_model.tokenizer, batch_size=2)
    losses = tiny_model(tiny_batch)
    assert set(losses) >= {"loss_lm", "loss_planning", "loss_map_boundary", "loss_kl", "loss_collision"}
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    assert losses["loss_lm"] > 1.0  # random LLM on a ~650-token vocab: CE near log(650) = 6.5
    out = MindDrivePolicy(tiny_model).act(tiny_batch, sample=False)
    assert out.decision.shape == (2,) and out.decision.dtype == torch.int64
    assert out.log_probs.shape == (2, 7) and out.log_probs.dtype == torch.float32
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(2), atol=1e-5)
    assert out.value.shape == (2,) and out.value.dtype == torch.float32
    assert out.path.shape == (2, NUM_PATH_POINTS, 2) and out.speed_waypoints.shape == (2, NUM_FUTURE_WAYPOINTS, 2)
    assert torch.equal(out.decision, out.log_probs.argmax(-1))
    assert torch.equal(out.path_decision, tiny_batch["command"])
    assert out.memory["prev_memory"].shape == (2, 8, 32) and out.memory["prev_memory_mask"].sum() == 16


def test_lm_loss_equals_cross_entropy_over_the_spliced_sequence(shared_model, batch_factory):
    """The LM loss reads the labelled positions off the text before the splice (a host read before the step's GPU
    work) and maps them into the spliced sequence: it must equal the plain next-token loss on the spliced labels,
    including an answer that starts right after the image token and padded rows of different lengths."""
    model = shared_model  # read only: dropout is 0 in the tiny config, so the mode does not matter
    batch = batch_factory(model.tokenizer, batch_size=3, seed=5)
    ids, labels = batch["input_ids"], batch["labels"].clone()
    pos = int((ids[1] == model.image_token_id).nonzero())
    labels[1, pos + 1:pos + 3] = ids[1, pos + 1:pos + 3]  # labelled tokens right after the image
    batch["labels"] = labels
    batch["attention_mask"][2, -3:] = 0
    with torch.no_grad():
        loss = model(batch)["loss_lm"] / model.loss_weights["lm"]
        scene, _ = model.encode_scene(batch)
        embeds, mask, new_labels, _ = model.splice_scene(ids, batch["attention_mask"], scene, labels)
        logits = model._decoder_lm[1](model.run_llm("action_expert", embeds, mask)).float()
        reference = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), new_labels[:, 1:].flatten(),
                                                      ignore_index=-100)
    assert (labels[:, 1:] != -100).sum() > 10 and torch.allclose(loss, reference, rtol=1e-5, atol=1e-6)


def test_splice_replaces_image_token_by_scene_tokens(shared_model, batch_factory):
    tiny_model = shared_model
    tiny_batch = batch_factory(tiny_model.tokenizer, batch_size=2)
    scene, _ = tiny_model.encode_scene(tiny_batch)
    n = scene.shape[1]
    assert n == 16 + 8 + 1
    ids, mask, labels = tiny_batch["input_ids"], tiny_batch["attention_mask"], tiny_batch["labels"]
    embeds, new_mask, new_labels, new_ids = tiny_model.splice_scene(ids, mask, scene, labels)
    assert embeds.shape[1] == ids.shape[1] + n - 1
    for i in range(ids.shape[0]):
        pos = int((ids[i] == tiny_model.image_token_id).nonzero())
        assert torch.equal(embeds[i, pos:pos + n], scene[i])
        assert (new_labels[i, pos:pos + n] == -100).all()
        assert torch.equal(new_ids[i, pos + n:], ids[i, pos + 1:])  # text after the image shifts by n - 1
        assert torch.equal(new_labels[i, pos + n:], labels[i, pos + 1:])
        assert int(new_mask[i].sum()) == int(mask[i].sum()) + n - 1


def test_decision_distribution_matches_full_vocab_brute_force(tiny_model, tiny_batch):
    perturb_adapter(tiny_model, "decision_expert")
    tiny_model.eval()
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(tiny_batch)
        log_probs = tiny_model.decision_log_probs(tiny_batch, scene)
        embeds, mask = tiny_model.decision_inputs(tiny_batch, scene)
        tiny_model.use_adapter("decision_expert")
        logits = tiny_model.llm.peft(inputs_embeds=embeds, attention_mask=mask).logits  # (B, L, V) full vocab
        last = logits[torch.arange(2), mask.sum(1) - 1]
        picked = last[:, tiny_model.speed_token_ids]
        brute = picked.softmax(-1)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(log_probs.exp(), brute, atol=1e-5)
    assert log_probs.exp().max() - log_probs.exp().min() > 1e-3  # not a degenerate uniform distribution


def test_temperature_and_sampling(tiny_model, tiny_batch):
    perturb_adapter(tiny_model, "decision_expert")
    policy = MindDrivePolicy(tiny_model)
    cold = policy.act(tiny_batch, sample=False, temperature=0.1).log_probs
    warm = policy.act(tiny_batch, sample=False, temperature=1.0).log_probs
    assert torch.allclose(cold, torch.log_softmax(warm * 10.0, -1), atol=1e-4)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([policy.act(tiny_batch, generator=gen).decision for _ in range(12)])
    assert len(draws.unique()) > 1  # sampling actually samples
    forced = policy.act(tiny_batch, decision=torch.tensor([3, 5]))
    assert forced.decision.tolist() == [3, 5]


def test_adapters_only_affect_their_own_outputs(tiny_model, tiny_batch):
    for adapter, seed in (("decision_expert", 1), ("action_expert", 2), ("value_expert", 3)):
        perturb_adapter(tiny_model, adapter, seed=seed)
    policy = MindDrivePolicy(tiny_model)
    decision = torch.tensor([1, 4])
    before = policy.act(tiny_batch, decision=decision)
    perturb_adapter(tiny_model, "action_expert", seed=7)
    after_action = policy.act(tiny_batch, decision=decision)
    assert torch.equal(before.log_probs, after_action.log_probs) and torch.equal(before.value, after_action.value)
    assert (before.speed_waypoints - after_action.speed_waypoints).abs().max() > 1e-4
    perturb_adapter(tiny_model, "decision_expert", seed=8)
    after_decision = policy.act(tiny_batch, decision=decision)
    assert not torch.allclose(after_action.log_probs, after_decision.log_probs)
    assert torch.equal(after_action.value, after_decision.value)
    assert torch.equal(after_action.speed_waypoints, after_decision.speed_waypoints)
    # The value net depends only on value_expert + value_head (+ shared scene encoder).
    perturb_adapter(tiny_model, "value_expert", seed=9)
    after_value = policy.act(tiny_batch, decision=decision)
    assert not torch.allclose(after_decision.value, after_value.value)
    assert torch.equal(after_decision.log_probs, after_value.log_probs)


def test_base_frozen_and_only_selected_groups_train(tiny_model, tiny_batch):
    base = {n: p.detach().clone() for n, p in tiny_model.llm.named_parameters() if "lora_" not in n}
    assert all(not p.requires_grad for n, p in tiny_model.llm.named_parameters() if "lora_" not in n)
    other_adapters = {n: p.detach().clone() for n, p in tiny_model.llm.named_parameters()
                      if ".decision_expert." in n or ".value_expert." in n}
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        loss = sum(tiny_model(tiny_batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in tiny_model.llm.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]), n
        if n in other_adapters:
            assert torch.equal(p, other_adapters[n]), n
    trained = [n for n, p in tiny_model.llm.named_parameters() if ".action_expert." in n and "lora_B" in n]
    assert trained and all(tiny_model.llm.get_parameter(n).abs().sum() > 0 for n in trained)
    assert all(not p.requires_grad for p in tiny_model.value_head.parameters())
    tiny_model.set_trainable(["decision_expert", "value_expert", "value_head"])
    names = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert names and all(".decision_expert." in n or ".value_expert." in n or n.startswith("value_head") for n in names)


def test_evaluate_decisions_reproduces_act_with_gradients(tiny_model, tiny_batch):
    perturb_adapter(tiny_model, "decision_expert")
    tiny_model.set_trainable(["decision_expert", "value_expert", "value_head"])
    tiny_model.train()  # PPO trainers leave the model in train mode; dropout must still be off
    policy = MindDrivePolicy(tiny_model)
    out = policy.act(tiny_batch)
    log_probs, value, entropy = policy.evaluate_decisions(tiny_batch, out.decision)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-6) and torch.allclose(value, out.value, atol=1e-6)
    assert torch.allclose(entropy, -(out.log_probs.exp() * out.log_probs).sum(-1), atol=1e-6)
    (log_probs[torch.arange(2), out.decision].sum() + value.sum()).backward()
    grads = {n: p.grad for n, p in tiny_model.named_parameters() if p.grad is not None}
    assert any(".decision_expert." in n for n in grads) and any(".value_expert." in n for n in grads)
    assert "value_head.weight" in grads and not any(".action_expert." in n for n in grads)


def test_memory_is_explicit_state(tiny_model, tiny_batch):
    policy = MindDrivePolicy(tiny_model)
    perturb_adapter(tiny_model, "decision_expert")
    first = policy.act(tiny_batch, sample=False)
    fresh = policy.act(tiny_batch, sample=False)
    assert torch.equal(first.log_probs, fresh.log_probs)  # no hidden state between calls
    second = policy.act({**tiny_batch, **first.memory}, sample=False)
    assert (second.log_probs - first.log_probs).abs().max() > 1e-6  # the memory is used
    reset = {**tiny_batch, "prev_memory": first.memory["prev_memory"],
             "prev_memory_mask": torch.zeros_like(first.memory["prev_memory_mask"])}
    assert torch.allclose(policy.act(reset, sample=False).log_probs, first.log_probs, atol=1e-6)
    again = policy.act({**tiny_batch, **first.memory}, sample=False)
    assert torch.equal(again.log_probs, second.log_probs)  # a stored step recomputes exactly


def test_planning_losses_off_without_planning(shared_model, batch_factory):
    batch = batch_factory(shared_model.tokenizer, batch_size=2, planning=False)
    with torch.no_grad():
        losses = shared_model(batch)
    assert float(losses["loss_planning"]) == 0.0 and float(losses["loss_kl"]) == 0.0
    assert float(losses["loss_lm"]) > 0.0


def test_decide_by_generation_agrees_with_argmax_when_speed_tokens_dominate(tiny_model, tiny_batch):
    # Push every position's output toward the speed tokens (bias on the tied output rows would be
    # global; instead scale the decision LoRA until the argmax over the full vocab is a speed token).
    perturb_adapter(tiny_model, "decision_expert")
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(tiny_batch)
        one_pass = tiny_model.decision_log_probs(tiny_batch, scene).argmax(-1)
        embeds, mask = tiny_model.decision_inputs(tiny_batch, scene)
        tiny_model.use_adapter("decision_expert")
        logits = tiny_model.llm.peft(inputs_embeds=embeds, attention_mask=mask).logits
        full_argmax = logits[torch.arange(2), mask.sum(1) - 1].argmax(-1)
    generated = tiny_model.decide_by_generation(tiny_batch, max_new_tokens=1)
    speed_ids = tiny_model.speed_token_ids.tolist()
    for i in range(2):
        tok = int(full_argmax[i])
        expected = speed_ids.index(tok) if tok in speed_ids else -1
        assert int(generated[i]) == expected
        if expected >= 0:
            assert expected == int(one_pass[i])


def test_decide_by_generation_reads_the_first_new_token_when_generation_stops_early(tiny_model, tiny_batch):
    perturb_adapter(tiny_model, "decision_expert")
    tiny_model.eval()
    one_step = tiny_model.decide_by_generation(tiny_batch, max_new_tokens=1)
    # Make the first generated token of row 0 the end-of-sequence token: that row stops after one token,
    # so the returned ids are shorter than max_new_tokens for it (and padded for the other row).
    causal = tiny_model.llm.peft.base_model.model
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(tiny_batch)
        embeds, mask = tiny_model.decision_inputs(tiny_batch, scene)
        with tiny_model.adapter("decision_expert"):
            logits = tiny_model.llm.peft(inputs_embeds=embeds, attention_mask=mask).logits
    first_ids = logits[torch.arange(2), mask.sum(1) - 1].argmax(-1)
    causal.generation_config.eos_token_id = int(first_ids[0])
    try:
        longer = tiny_model.decide_by_generation(tiny_batch, max_new_tokens=4)
    finally:
        causal.generation_config.eos_token_id = None
    assert torch.equal(longer, one_step)
    assert tiny_model._active_adapter == "action_expert"  # the generation baseline restores the adapter


def test_adapter_switch_keeps_requires_grad_untouched(tiny_model, tiny_batch):
    """PPO sets its own trainable set (and may freeze more by hand): switching adapters must not undo it."""
    tiny_model.set_trainable(["decision_expert", "value_head"])
    frozen_by_hand = next(p for n, p in tiny_model.llm.named_parameters() if ".decision_expert." in n)
    frozen_by_hand.requires_grad_(False)
    before = {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    for name in ("value_expert", "action_expert", "decision_expert", "action_expert"):
        tiny_model.use_adapter(name)
        assert tiny_model.llm.peft.base_model.active_adapter in (name, [name])
        assert {n: p.requires_grad for n, p in tiny_model.named_parameters()} == before
    MindDrivePolicy(tiny_model).act(tiny_batch)  # every adapter is used in one act
    assert {n: p.requires_grad for n, p in tiny_model.named_parameters()} == before
    assert not any(p.requires_grad for n, p in tiny_model.named_parameters() if ".action_expert." in n)


def test_policy_is_a_module_over_the_model(tiny_cfg, tiny_model, tiny_batch):
    from minddrive.rollout.policy import load_policy, policy_module

    policy = MindDrivePolicy(tiny_model)
    assert isinstance(policy, torch.nn.Module) and policy.model is tiny_model
    assert [id(p) for p in policy.parameters()] == [id(p) for p in tiny_model.parameters()]
    assert set(policy.state_dict()) == {f"model.{k}" for k in tiny_model.state_dict()}
    policy.eval()
    assert not tiny_model.training
    policy.train()
    assert tiny_model.training and policy.to("cpu") is policy and policy.device == torch.device("cpu")
    policy.set_trainable(["value_expert", "value_head"])
    assert {n.split(".")[0] for n, p in tiny_model.named_parameters() if p.requires_grad} == {"llm", "value_head"}
    perturb_adapter(tiny_model, "decision_expert")
    out = policy.act(tiny_batch)
    log_probs, value, entropy = policy(tiny_batch, out.decision)  # forward == evaluate_decisions (DDP path)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-6) and value.requires_grad
    loaded = load_policy(tiny_cfg, None)
    assert isinstance(loaded, MindDrivePolicy) and isinstance(policy_module(loaded), type(tiny_model))
    fast = load_policy(tiny_cfg, None, runtime=dict(dtype="bfloat16", cuda_graphs=True, merge_adapters=True))
    paths = fast_paths(fast.model)
    assert fast.dtype == torch.bfloat16 and paths.scene_graphs is not None and paths.decoder_graphs is not None
    assert paths.merged.weights[0].dtype == torch.bfloat16  # merged after the cast
    with pytest.raises(UserError, match=r"rollout.policy: unknown keys \['graphs'\]"):
        load_policy(tiny_cfg, None, runtime=dict(graphs=True))


def test_llm_checkpointing_toggle_uses_the_current_transformers_api(tiny_cfg, model_factory):
    llm_cfg = dict(tiny_cfg.model.llm, gradient_checkpointing=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = model_factory(tiny_cfg, llm=llm_cfg)
        assert model.gradient_checkpointing()
        with model.no_llm_gradient_checkpointing():
            assert not model.gradient_checkpointing()
        assert model.gradient_checkpointing()
    assert not [w for w in caught if "checkpointing" in str(w.message)], [str(w.message) for w in caught]


def test_route_anchored_path_is_the_route_plus_the_heads_offset(tiny_model, tiny_batch):
    """``path_anchor="route"`` (the tiny configs): plan and training both add the route to the path branch."""
    import pytest

    from minddrive.errors import UserError

    assert tiny_model.path_anchor == "route"
    head = tiny_model.trajectory_head
    seen = {}

    class ZeroOffsetHead(torch.nn.Module):
        def forward(self, h_wp, h_path, gt_wp=None, wp_mask=None, gt_path=None, path_mask=None, sample=False):
            seen["gt_path"] = gt_path
            out = head(h_wp, h_path, gt_wp, wp_mask, gt_path, path_mask, sample=False)
            out["path"] = torch.zeros_like(out["path"])
            if "prior_path" in out:
                out["prior_path"] = torch.zeros_like(out["prior_path"])
            return out

    tiny_model.trajectory_head = ZeroOffsetHead()
    try:
        tiny_model.eval()
        with torch.no_grad():
            plan = tiny_model.plan(tiny_batch, torch.zeros(2, dtype=torch.long))
            tiny_model(tiny_batch)
    finally:
        tiny_model.trajectory_head = head
    torch.testing.assert_close(plan["path"], tiny_batch["route"][:, :NUM_PATH_POINTS].float())
    # Training fits the head to the offset from the route, not to the path itself.
    torch.testing.assert_close(seen["gt_path"], (tiny_batch["path_points"] - tiny_batch["route"][:, :NUM_PATH_POINTS]).float())
    with pytest.raises(UserError, match="model.path_anchor"):
        type(tiny_model)._check_path_anchor("lane")


def test_preprocess_keeps_uint8_images_and_acts_as_on_float_images(tiny_model):
    from minddrive.sim.env import EmbeddedDriveEnv

    obs, _ = EmbeddedDriveEnv(render=True, image_size=(128, 224)).reset(seed=3)
    assert obs["images"].dtype == np.uint8
    policy = MindDrivePolicy(tiny_model).eval()
    batch = policy.preprocess([obs, obs])
    as_float = policy.preprocess([dict(obs, images=obs["images"].astype(np.float32))] * 2)
    assert batch["img"].dtype == torch.uint8 and as_float["img"].dtype == torch.float32
    assert torch.equal(batch["img"].float(), as_float["img"])
    a, b = policy.act(batch, sample=False), policy.act(as_float, sample=False)
    assert torch.equal(a.log_probs, b.log_probs) and torch.equal(a.path, b.path)
    # Without images (PPO steps whose scene tokens are cached): no "img", decisions scored from given tokens.
    no_images = {k: v for k, v in obs.items() if k != "images"}
    bare = policy.preprocess([no_images, no_images])
    assert "img" not in bare and set(bare) == set(batch) - {"img"}
    with torch.no_grad():
        scene, _ = tiny_model.encode_scene(batch)
    from_tokens, _, _ = policy.evaluate_decisions(bare, a.decision, scene=scene)
    assert torch.allclose(from_tokens, a.log_probs, atol=1e-5)
    with pytest.raises(ValueError, match="1 of 2 observations have images; all or none"):
        policy.preprocess([obs, no_images])


def test_compiled_regions_give_the_eager_losses_and_gradients(tiny_model, batch_factory):
    """``acceleration.compile_regions`` (here Dynamo + AOTAutograd without Inductor's C++ build) changes how the IL step runs,
    not what it computes: the planning losses are one compiled function, the trajectory head one graph."""
    import torch._dynamo

    from minddrive.models import acceleration
    from minddrive.models import losses as L

    tiny_model.eval()  # no dropout or latent sampling: both runs see the same numbers
    batch = batch_factory(tiny_model.tokenizer, batch_size=2, seed=21)
    batch["map_boundaries"][..., 1] = batch["map_boundaries"][..., 1].sign() * 0.4  # within 1 m of the plan
    batch["agent_boxes"][:, 0, :, :2] = 0.0  # an agent on the ego path: a live collision term

    def run():
        losses = tiny_model(batch)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
        tiny_model.zero_grad(set_to_none=True)
        return {k: v.detach() for k, v in losses.items()}, grads

    eager, eager_grads = run()
    torch._dynamo.reset()
    acceleration.compile_regions(tiny_model, backend="aot_eager")
    try:
        assert tiny_model.planning_losses is not L.planning_losses
        compiled, compiled_grads = run()
    finally:
        acceleration.decompile_regions(tiny_model)
    assert tiny_model.planning_losses is L.planning_losses and "planning_losses" not in vars(tiny_model)
    assert eager["loss_map_boundary"] > 0.01 and eager["loss_collision"] > 0.01, eager
    assert compiled.keys() == eager.keys()
    for key in eager:
        assert torch.allclose(compiled[key], eager[key], rtol=1e-4, atol=1e-5), (key, compiled[key], eager[key])
    assert compiled_grads.keys() == eager_grads.keys() and len(eager_grads) > 10
    for name, grad in eager_grads.items():
        assert torch.allclose(compiled_grads[name], grad, rtol=1e-3, atol=1e-5), name


def test_frozen_llm_linears_in_bf16_give_the_same_autocast_pass_and_lora_gradients(tiny_model, tiny_batch):
    """``acceleration.store_frozen_llm_linears``: under bf16 autocast every Linear casts its weight to bf16 anyway, so storing
    the frozen ones in bf16 must change no output and no LoRA gradient; embeddings, norms and LoRA stay float32."""
    from minddrive.models.checkpoint import base_checksum
    from minddrive.models.acceleration import frozen_decoder_linears, store_frozen_llm_linears

    model = tiny_model
    perturb_adapter(model, "action_expert")
    with torch.no_grad():
        scene, _ = model.encode_scene(tiny_batch)
        embeds, mask, _, _ = model.splice_scene(tiny_batch["input_ids"], tiny_batch["attention_mask"], scene)
    lora = [p for n, p in model.llm.named_parameters() if "lora_" in n and ".action_expert." in n]

    def autocast_pass():
        for p in lora:
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = model.run_llm("action_expert", embeds, mask)
        (hidden.float() * torch.linspace(-1, 1, hidden.shape[-1])).sum().backward()
        return hidden.detach(), [p.grad.clone() for p in lora]

    reference, reference_grads = autocast_pass()
    checksum = base_checksum(model)
    linears = frozen_decoder_linears(model.llm.peft)
    expected = sum(p.numel() * 2 for m in linears for p in (m.weight, m.bias) if p is not None)
    assert store_frozen_llm_linears(model, torch.bfloat16) == expected > 0
    hidden, grads = autocast_pass()
    assert len(linears) == 7 * len(model._decoder_lm[0].layers)  # q, k, v, o, gate, up, down per layer
    assert all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    assert model.llm_embeddings.weight.dtype == model._decoder_lm[0].norm.weight.dtype == torch.float32
    assert torch.equal(hidden, reference) and reference.abs().max() > 0
    assert all(torch.equal(g, r) for g, r in zip(grads, reference_grads)) and reference_grads[-1].abs().sum() > 0
    assert store_frozen_llm_linears(model, torch.bfloat16) == 0  # already stored
    # a checkpoint saved from it still loads into a float32-built model (base_checksum's tolerance: 1e-4)
    assert abs(base_checksum(model) - checksum) < 1e-5 * checksum
