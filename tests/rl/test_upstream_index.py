"""Upstream MindDrive's decoupled index (dataset_index.pkl = list of step_*.npz paths): PPO trains on one built by
hand from upstream's documented keys; ours written in that layout has upstream's keys, shapes and dtypes and
reproduces the policy's rollout-time numbers; rl-convert-index goes both ways."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl import upstream_format
from minddrive.rl.buffer import pack_obs
from minddrive.rl.index_convert import convert, decouple_upstream, index_layout
from minddrive.rl.ppo import PPOHyperParams, StepDataset, ppo_update, select_trainable
from minddrive.rollout.policy import load_policy

CONFIG = "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG)


def fresh_policy(cfg):
    torch.manual_seed(0)
    return load_policy(cfg, None)


def write_upstream_step_by_hand(path: Path, action: int, ref_log_probs: np.ndarray, value: float, ret: float,
                                advantage: float, start: bool, embeds: torch.Tensor, ids: torch.Tensor) -> None:
    """What upstream's decoupler writes for one buffer row (its buffer's (1, n_envs=1, ...) slices)."""
    info = np.zeros((1, 1), dtype=object)
    info[0] = {"inputs_embeds": embeds[None], "new_input_ids": ids[None]}   # as the buffer's add() assigns
    np.savez(path, actions=np.array([[action]], np.float32), rewards=np.zeros((1, 1), np.float32),
             returns=np.array([[ret]], np.float32), episode_starts=np.array([float(start)], np.float32),
             values=np.array([[value]], np.float32), ref_log_probs=ref_log_probs.reshape(1, 7).astype(np.float32),
             advantages=np.array([[advantage]], np.float32), meta_action_info=info)


def test_ppo_trains_one_step_on_an_upstream_index_built_by_hand(cfg, tmp_path):
    policy = fresh_policy(cfg)
    model = policy.model
    hidden = model.llm_embeddings.weight.shape[1]
    gen = torch.Generator().manual_seed(1)
    speed_ids = model.speed_token_ids.tolist()
    paths, sequences = [], []
    for i in range(6):
        length = 9 + i % 3                                     # sequences of different lengths in one minibatch
        action = i % 7
        ids = torch.randint(0, 100, (length,), generator=gen)
        ids[-1] = speed_ids[action]                            # upstream's sequence ends with the meta-action token
        sequences.append((torch.randn(length, hidden, generator=gen), ids, action))
    batch = upstream_format.pad_sequences([s[0] for s in sequences], [s[1] for s in sequences])
    with torch.no_grad():   # rollout-time numbers: the same policy, so the first ratio is exactly 1
        ref, values, _ = upstream_format.evaluate_sequences(policy, **batch)
    for i, (embeds, ids, action) in enumerate(sequences):
        path = tmp_path / "data" / f"step_{i:08d}.npz"
        path.parent.mkdir(exist_ok=True)
        write_upstream_step_by_hand(path, action, ref[i].numpy(), float(values[i]), ret=1.0 - 0.3 * i,
                                    advantage=0.5 - 0.2 * i, start=i in (0, 3), embeds=embeds, ids=ids)
        paths.append(str(path))
    with open(tmp_path / "data" / "dataset_index.pkl", "wb") as handle:
        pickle.dump(paths, handle)

    dataset = StepDataset(tmp_path / "data" / "dataset_index.pkl")
    assert len(dataset) == 6 and index_layout(tmp_path / "data" / "dataset_index.pkl") == "upstream"
    step = dataset[4]
    assert step["action"] == 4 and step["inputs_embeds"].shape == (10, hidden) and step["ret"] == pytest.approx(-0.2)

    hp = PPOHyperParams(epochs=1, batch_size=6, learning_rate=1e-2)   # one minibatch: one optimiser step
    trainable = select_trainable(model, hp.trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate)
    metrics = ppo_update(policy, optimizer, dataset, hp, torch.device("cpu"), show_progress=False)
    assert metrics["step"] == 1
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-6) and metrics["clip_fraction"] == 0.0
    assert metrics["behaviour_log_prob_gap"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["value_loss"] > 0 and np.isfinite(metrics["loss"])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("decision_expert" in n for n in changed) and any("value_head" in n for n in changed)
    assert all(("decision_expert" in n or "value_expert" in n or "value_head" in n) for n in changed)


def our_index(tmp_path: Path, cfg, count: int = 5) -> Path:
    """A decoupled index in this project's layout: observation steps as ``minddrive decouple`` writes them."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from gpu_bench import SyntheticSteps

    steps = SyntheticSteps(count, tuple(cfg.env.image_size), seed=5)
    out = tmp_path / "ours"
    entries = []
    for i in range(count):
        step = steps[i]
        step["obs"] = pack_obs(step["obs"])
        step.update(reward=0.0 if i < count - 1 else 1.0, memory=None)
        relative = Path("steps") / "route0" / f"{i:06d}.pt"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(step, out / relative)
        entries.append({"file": str(relative), "route_key": "route0", "t": i, "action": step["action"],
                        "log_prob": float(step["log_probs"][step["action"]]), "value": step["value"],
                        "reward": step["reward"], "return": step["ret"], "advantage": step["advantage"],
                        "episode_start": i == 0, "done": i == count - 1})
    index = dict(version=1, run=dict(config_fingerprint="c", ckpt=None, ckpt_fingerprint="none"), gamma=0.99,
                 gae_lambda=1.0, sources=[], num_episodes=1, mean_return=1.0, steps=entries)
    with open(out / "dataset_index.pkl", "wb") as handle:
        pickle.dump(index, handle)
    return out / "dataset_index.pkl"


def test_ours_in_upstream_layout_has_upstreams_keys_shapes_dtypes_and_the_policys_numbers(cfg, tmp_path):
    policy = fresh_policy(cfg)
    source = our_index(tmp_path, cfg)
    with pytest.raises(UserError, match="--config, --ckpt"):
        convert(source, tmp_path / "nopolicy", "upstream")
    index_path = convert(source, tmp_path / "up", "upstream", policy, show_progress=False)
    with open(index_path, "rb") as handle:
        paths = pickle.load(handle)
    assert isinstance(paths, list) and [Path(p).name for p in paths] == [f"step_{i:08d}.npz" for i in range(5)]
    hidden = policy.model.llm_embeddings.weight.shape[1]
    ours = StepDataset(source)
    for i, path in enumerate(paths):
        data = np.load(path, allow_pickle=True)
        assert sorted(data.files) == sorted(upstream_format.STEP_KEYS)
        for key, shape in upstream_format.STEP_SHAPES.items():
            assert data[key].shape == shape, key
            assert data[key].dtype == (object if key == "meta_action_info" else np.float32), key
        # read exactly as upstream's RL dataset reads a step
        embeds = data["meta_action_info"][0][0]["inputs_embeds"][0]
        ids = data["meta_action_info"][0][0]["new_input_ids"][0]
        assert embeds.dtype == torch.float32 and embeds.ndim == 2 and embeds.shape[1] == hidden
        assert ids.dtype == torch.int64 and ids.shape == (embeds.shape[0],)
        assert int(ids[-1]) == int(policy.model.speed_token_ids[int(data["actions"][0][0])])
        assert data["episode_starts"][0] == float(i == 0)
        step = ours[i]
        assert data["actions"][0][0] == step["action"] and data["advantages"][0][0] == pytest.approx(step["advantage"])
        np.testing.assert_allclose(data["ref_log_probs"][0], step["log_probs"], rtol=1e-6)

    # upstream's read-out positions on the written sequences give the policy's own decision and value
    up = StepDataset(index_path)
    steps = [up[i] for i in range(5)]
    batch = upstream_format.pad_sequences([s["inputs_embeds"] for s in steps], [s["new_input_ids"] for s in steps])
    with torch.no_grad():
        log_probs, values, _ = upstream_format.evaluate_sequences(policy, **batch)
        obs_batch = policy.preprocess([ours.read(i)["obs"] for i in range(5)])
        expected_log_probs, expected_values = policy.model.decision_and_value(obs_batch)
    torch.testing.assert_close(log_probs, expected_log_probs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values, expected_values, atol=1e-5, rtol=1e-5)

    # and back: our layout with the sequences, which PPO reads as well
    back = convert(index_path, tmp_path / "back", "minddrive", show_progress=False)
    assert index_layout(back) == "minddrive"
    again = StepDataset(back)
    assert len(again) == 5 and again.entries[0]["episode_start"] and again.entries[-1]["done"]
    torch.testing.assert_close(again[2]["inputs_embeds"], steps[2]["inputs_embeds"])
    hp = PPOHyperParams(epochs=1, batch_size=5, learning_rate=1e-3)
    optimizer = torch.optim.AdamW(select_trainable(policy.model, hp.trainable), lr=hp.learning_rate)
    metrics = ppo_update(policy, optimizer, again, hp, torch.device("cpu"), show_progress=False)
    assert metrics["step"] == 1 and np.isfinite(metrics["loss"])


def test_rl_convert_index_cli_and_decouple_layout_errors(tmp_path, capsys):
    from minddrive.cli import main

    assert main(["rl-convert-index", str(tmp_path / "missing.pkl"), "--to", "upstream", "--out",
                 str(tmp_path / "o")]) != 0
    assert "dataset index not found" in capsys.readouterr().err
    assert main(["decouple", str(tmp_path), "--out", str(tmp_path / "o"), "--layout", "upstream"]) != 0
    assert "give --config and --ckpt" in capsys.readouterr().err
    assert callable(decouple_upstream)
