"""Checkpoint round trip, keep-last-K, and the action -> decision/value conversion (function and CLI)."""

from __future__ import annotations

import json

import torch

from minddrive.cli import main as cli_main
from minddrive.models.checkpoint import build_model_from_checkpoint, keep_last_k, load_checkpoint, save_checkpoint
from minddrive.models.convert import convert_checkpoint
from minddrive.models.policy import MindDrivePolicy


def _randomise_trainables(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def test_save_load_round_trip_is_bit_exact(tmp_path, tiny_cfg, tiny_model, tiny_batch):
    _randomise_trainables(tiny_model)
    with torch.no_grad():
        tiny_model.value_head.bias.fill_(0.25)
    save_checkpoint(tmp_path / "iter_10", tiny_model, tiny_cfg, meta={"stage": "stage2", "step": 10})
    assert sorted(p.name for p in (tmp_path / "iter_10").iterdir()) == ["config.py", "meta.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["iter_10"]  # no temporary left behind
    _, state, meta = load_checkpoint(tmp_path / "iter_10")
    assert meta["stage"] == "stage2" and meta["converted"] is False and meta["num_tensors"] == len(state)
    assert not any("lora_" not in k and k.startswith("llm.") for k in state)  # no base weights stored
    reloaded, _, _ = build_model_from_checkpoint(tmp_path / "iter_10")
    a, b = tiny_model.trainable_state_dict(), reloaded.trainable_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    base_a = {n: p for n, p in tiny_model.named_parameters()}
    assert all(torch.equal(base_a[n], p) for n, p in reloaded.named_parameters())
    out_a = MindDrivePolicy(tiny_model).act(tiny_batch, sample=False)
    out_b = MindDrivePolicy.from_checkpoint(tmp_path / "iter_10").act(tiny_batch, sample=False)
    assert torch.equal(out_a.log_probs, out_b.log_probs) and torch.equal(out_a.path, out_b.path)
    assert torch.equal(out_a.value, out_b.value)


def test_keep_last_k(tmp_path):
    for step in (5, 100, 20, 7):
        (tmp_path / f"iter_{step}").mkdir()
    (tmp_path / "latest.txt").write_text("x")
    removed = keep_last_k(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["iter_5", "iter_7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_100", "iter_20", "latest.txt"]


def test_convert_makes_decision_and_action_experts_identical(tmp_path, tiny_cfg, tiny_model, tiny_batch, capsys):
    _randomise_trainables(tiny_model)
    save_checkpoint(tmp_path / "il", tiny_model, tiny_cfg)
    assert cli_main(["convert", "--ckpt", str(tmp_path / "il"), "--out", str(tmp_path / "rl")]) == 0
    printed = capsys.readouterr().out
    # tiny LLM: 2 layers x 7 projections x (A, B) = 28 tensors per adapter
    assert "action_expert -> decision_expert: 28 tensors" in printed and "-> value_expert: 28 tensors" in printed
    meta = json.loads((tmp_path / "rl" / "meta.json").read_text())
    assert meta["converted"] is True and meta["conversion"]["decision_expert"]["tensors"] == 28
    model, _, _ = build_model_from_checkpoint(tmp_path / "rl")
    model.eval()
    with torch.no_grad():
        scene, _ = model.encode_scene(tiny_batch)
        embeds, mask = model.decision_inputs(tiny_batch, scene)
        h = {a: model.run_llm(a, embeds, mask) for a in ("action_expert", "decision_expert", "value_expert")}
    assert torch.equal(h["action_expert"], h["decision_expert"]) and torch.equal(h["action_expert"], h["value_expert"])
    # ...and the conversion really changed something: before it, the decision expert differed.
    before, _, _ = build_model_from_checkpoint(tmp_path / "il")
    with torch.no_grad():
        hb = before.run_llm("decision_expert", embeds, mask)
    assert (hb - h["action_expert"]).abs().max() > 1e-4


def test_convert_rejects_non_checkpoint(tmp_path, capsys):
    assert cli_main(["convert", "--ckpt", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a MindDrive checkpoint" in capsys.readouterr().err
