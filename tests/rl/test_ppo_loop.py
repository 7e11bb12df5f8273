"""PPO update on a contextual bandit with a known answer, and the resumable RL loop on the corridor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from minddrive.rollout.driver import EpisodeTrace
from minddrive.rl.buffer import write_episode
from minddrive.rl.decouple import decouple
from minddrive.rl.ppo import PPOHyperParams, StepDataset, ppo_update, select_trainable
from minddrive.utils.io import write_json
from rl_fakes import CorridorPolicy

HERE = Path(__file__).resolve().parent


def bandit_index(tmp_path: Path, policy: CorridorPolicy, n: int = 64) -> Path:
    """One-decision episodes: action 1 pays +1 when feature 0 > 0, action 3 pays +1 otherwise, else -1."""
    rng = np.random.default_rng(0)
    run = dict(config_fingerprint="bandit", ckpt=None, ckpt_fingerprint="none")
    write_json(tmp_path / "roll" / "run.json", run)
    for k in range(n):
        features = rng.normal(size=4).astype(np.float32)
        out = policy.act(policy.preprocess([dict(features=features)]), sample=True)
        action = int(out.decision[0])
        best = 1 if features[0] > 0 else 3
        trace = EpisodeTrace(obs=[dict(features=features)], actions=[action], log_probs=[out.log_probs[0].numpy()],
                             values=[float(out.value[0])], rewards=[1.0 if action == best else -1.0],
                             memory=[None], terminated=True)
        write_episode(tmp_path / "roll", dict(run, route_key=f"b{k}"), trace)
    decouple([tmp_path / "roll"], tmp_path / "dec", gamma=0.99, gae_lambda=0.95, show_progress=False)
    return tmp_path / "dec" / "dataset_index.pkl"


def prob_of_best(policy: CorridorPolicy, n: int = 200) -> float:
    features = torch.as_tensor(np.random.default_rng(1).normal(size=(n, 4)), dtype=torch.float32)
    log_probs, _, _ = policy.evaluate_decisions(dict(features=features), None)
    best = torch.where(features[:, 0] > 0, 1, 3)
    return float(log_probs.detach().exp().gather(1, best[:, None]).mean())


def test_ppo_learns_the_bandit_and_logs_diagnostics(tmp_path):
    torch.manual_seed(0)
    policy = CorridorPolicy(hidden=16)
    index = bandit_index(tmp_path, policy)
    before = prob_of_best(policy)
    hp = PPOHyperParams(epochs=8, batch_size=16, learning_rate=0.01, seed=0)
    params = select_trainable(policy, hp.trainable)
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate)
    metrics = ppo_update(policy, optimizer, StepDataset(index), hp, torch.device("cpu"),
                         log_path=tmp_path / "log.jsonl", show_progress=False)
    after = prob_of_best(policy)
    assert before == pytest.approx(1 / 7, abs=0.03)      # near-uniform start over the 7 meta-actions
    assert after > before + 0.05, (before, after)            # one clipped update: +0.05 is ~35 % relative
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and {"approx_kl", "clip_fraction", "entropy", "explained_variance", "kl_loss"} <= set(lines[0])
    assert lines[-1]["clip_fraction"] > 0.0 and lines[-1]["kl_loss"] > lines[0]["kl_loss"] >= 0.0
    assert metrics["entropy"] < lines[0]["entropy"]


def test_explained_variance_is_over_the_epoch_even_with_a_one_step_minibatch(tmp_path):
    """17 steps in minibatches of 8 leave a last minibatch of one step (no variance): the epoch's explained
    variance is still a number, the one of all its predictions."""
    torch.manual_seed(0)
    policy = CorridorPolicy(hidden=16)
    index = bandit_index(tmp_path, policy, n=17)
    hp = PPOHyperParams(epochs=1, batch_size=8, learning_rate=0.0, seed=0)
    params = select_trainable(policy, hp.trainable)
    metrics = ppo_update(policy, torch.optim.AdamW(params, lr=0.0), StepDataset(index), hp, torch.device("cpu"),
                         show_progress=False)
    dataset = StepDataset(index)
    returns = torch.tensor([float(dataset[i]["ret"]) for i in range(len(dataset))])
    features = torch.stack([torch.as_tensor(dataset[i]["obs"]["features"]) for i in range(len(dataset))])
    _, values, _ = policy.evaluate_decisions(dict(features=features), None)
    expected = 1 - (returns - values.detach()).var() / returns.var()
    assert np.isfinite(metrics["explained_variance"])
    assert metrics["explained_variance"] == pytest.approx(float(expected), abs=1e-4)


def test_first_minibatch_is_on_policy_and_frozen_parameters_stay(tmp_path):
    torch.manual_seed(0)
    policy = CorridorPolicy(hidden=16)
    index = bandit_index(tmp_path, policy, n=32)
    frozen = {k: v.clone() for k, v in policy.named_parameters() if "value" in k}
    hp = PPOHyperParams(epochs=1, batch_size=32, learning_rate=0.01, trainable=("decision_expert",))
    optimizer = torch.optim.AdamW(select_trainable(policy, hp.trainable), lr=hp.learning_rate)
    metrics = ppo_update(policy, optimizer, StepDataset(index), hp, torch.device("cpu"), show_progress=False)
    # one minibatch = the whole data, evaluated before the step: ratio 1, no KL, nothing clipped
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-6) and metrics["kl_loss"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["clip_fraction"] == 0.0
    assert all(torch.equal(v, dict(policy.named_parameters())[k]) for k, v in frozen.items())


def test_recomputed_old_log_probs_start_the_ratio_at_one_when_the_rollout_numerics_differ(tmp_path):
    """Rollouts scored by another numeric path than the learner (here: weights nudged after collection, as bf16
    rollouts vs a float32 learner) leave the stored log-probs off the learner's: the first minibatch is then
    off-policy by noise. Recomputed, it is on-policy again; the gap is reported either way."""
    torch.manual_seed(0)
    policy = CorridorPolicy(hidden=16)
    index = bandit_index(tmp_path, policy, n=32)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "value" not in name:
                p.add_(0.05 * torch.randn_like(p))
    results = {}
    for recompute in (False, True):
        hp = PPOHyperParams(epochs=1, batch_size=32, learning_rate=0.0, recompute_old_log_probs=recompute)
        optimizer = torch.optim.AdamW(select_trainable(policy, hp.trainable), lr=0.0)
        results[recompute] = ppo_update(policy, optimizer, StepDataset(index), hp, torch.device("cpu"),
                                        show_progress=False)
    stale, fresh = results[False], results[True]
    assert stale["behaviour_log_prob_gap"] == pytest.approx(fresh["behaviour_log_prob_gap"])
    assert stale["behaviour_log_prob_gap"] > 0.01
    assert stale["approx_kl"] > 1e-5 and stale["kl_loss"] > 1e-5
    assert fresh["approx_kl"] == pytest.approx(0.0, abs=1e-7) and fresh["kl_loss"] == pytest.approx(0.0, abs=1e-7)
    assert fresh["clip_fraction"] == 0.0


def test_rl_loop_runs_resumes_and_plots(tmp_path, monkeypatch):
    from minddrive.rl.loop import rl_loop
    from test_collect_decouple import write_config

    cfg = write_config(tmp_path, monkeypatch, count=4)
    cfg.rollout.num_workers, cfg.ppo.epochs, cfg.rl_eval.limit = 0, 2, 2
    torch.manual_seed(0)
    CorridorPolicy(hidden=16).save_checkpoint(str(tmp_path / "il"), meta=dict(stage="il"))
    result = rl_loop(cfg, tmp_path / "il", tmp_path / "rl", iterations=1, show_progress=False)
    assert [p["iteration"] for p in result["iterations"]] == [0, 1]
    done = tmp_path / "rl" / "iter_01" / "done.json"
    assert (tmp_path / "rl" / "iter_01" / "ppo" / "ckpt" / "model.safetensors").is_file()
    assert (tmp_path / "rl" / "progress.png").stat().st_size > 1000
    assert 0.0 <= result["final_driving_score"] <= 100.0
    stamp = done.stat().st_mtime_ns
    again = rl_loop(cfg, tmp_path / "il", tmp_path / "rl", iterations=2,
                    show_progress=False)
    assert done.stat().st_mtime_ns == stamp                       # iteration 1 not redone
    assert [p["iteration"] for p in again["iterations"]] == [0, 1, 2]
    # iteration 2 collected with iteration 1's weights, on fresh seeds
    run2 = json.loads((tmp_path / "rl" / "iter_02" / "rollouts" / "run.json").read_text())
    assert run2["ckpt"].endswith(os.path.join("iter_01", "ppo", "ckpt")) and run2["route_offset"] == 4

    # other IL weights into the same folder: refused before any work, the finished iterations untouched
    from minddrive.errors import UserError

    CorridorPolicy(hidden=16).save_checkpoint(str(tmp_path / "il2"), meta=dict(stage="il"))
    before = {p: p.read_bytes() for p in sorted((tmp_path / "rl").rglob("*")) if p.is_file()}
    with pytest.raises(UserError, match="another checkpoint_sha256"):
        rl_loop(cfg, tmp_path / "il2", tmp_path / "rl", iterations=2, show_progress=False)
    assert {p: p.read_bytes() for p in sorted((tmp_path / "rl").rglob("*")) if p.is_file()} == before


def _score_shard(rank: int, world_size: int, init_file: str, index: str, out_dir: str) -> None:
    import torch.distributed as dist

    from minddrive.rl.ppo import score_steps

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        policy = CorridorPolicy(hidden=16)
        hp = PPOHyperParams(batch_size=4, recompute_old_log_probs=True)
        scores, gap = score_steps(policy, StepDataset(index), hp, torch.device("cpu"))
        torch.save(dict(scores=scores, gap=gap), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_recomputed_log_probs_gather_every_shard_across_processes(tmp_path):
    """Two processes each score an interleaved shard of 11 steps (unequal shards) and both end with all 11 rows,
    in dataset order, equal to one process scoring everything."""
    import torch.multiprocessing as mp

    from minddrive.rl.ppo import score_steps

    torch.manual_seed(0)
    policy = CorridorPolicy(hidden=16)
    index = bandit_index(tmp_path, policy, n=11)
    hp = PPOHyperParams(batch_size=4, recompute_old_log_probs=True)
    expected, expected_gap = score_steps(policy, StepDataset(index), hp, torch.device("cpu"))
    mp.spawn(_score_shard, args=(2, str(tmp_path / "init"), str(index), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["scores"].shape == (11, 7) and torch.allclose(got["scores"], expected, atol=1e-6)
        assert got["gap"] == pytest.approx(expected_gap, abs=1e-6)


def test_scene_cache_encodes_each_step_once_and_steps_aside_for_a_trainable_encoder():
    from minddrive.rl.ppo import SceneCache

    class Encoder:
        def __init__(self, frozen=True):
            self.frozen, self.calls = frozen, 0

        def scene_tokens(self, batch):
            self.calls += 1
            return batch["x"] * 2 if self.frozen else None

    policy = Encoder()
    cache = SceneCache(policy)
    x = torch.arange(12.0).view(4, 3)
    first = cache.tokens(policy, [5, 2], dict(x=x[:2]), torch.device("cpu"))
    again = cache.tokens(policy, [2, 5], dict(x=x[:2]), torch.device("cpu"))  # cached, in this order
    assert policy.calls == 1 and torch.equal(first, x[:2] * 2) and torch.equal(again, (x[:2] * 2).flip(0))
    cache.tokens(policy, [2, 7], dict(x=x[2:]), torch.device("cpu"))  # one step not cached: encode the minibatch
    assert policy.calls == 2 and torch.equal(cache.rows[7], x[3] * 2) and torch.equal(cache.rows[2], x[2] * 2)
    trainable = Encoder(frozen=False)
    cache = SceneCache(trainable)
    assert cache.tokens(trainable, [0], dict(x=x[:1]), torch.device("cpu")) is None and not cache.enabled
    assert not SceneCache(policy, enabled=False).enabled
    features = CorridorPolicy(hidden=16)  # no scene encoder: its scene_tokens gives none, the cache steps aside
    cache = SceneCache(features)
    assert cache.tokens(features, [0], dict(x=x[:1]), torch.device("cpu")) is None and not cache.enabled


@pytest.mark.parametrize("recompute", [False, True])
def test_ppo_on_the_tiny_vla_encodes_each_step_once_and_updates_as_without_the_cache(recompute):
    """Three epochs over six steps: the scene encoder (frozen in PPO) runs once per step with the cache instead
    of once per step and epoch (scoring the steps first fills the cache), epochs whose steps are all cached read
    them without their images, and losses and weights come out the same."""
    import sys

    from minddrive.config import load_config
    from minddrive.rollout.policy import load_policy

    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    from gpu_bench import SyntheticSteps

    cfg = load_config("adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py")
    steps = SyntheticSteps(6, tuple(cfg.env.image_size), seed=3)
    runs = {}
    for cache in (True, False):
        torch.manual_seed(0)
        policy = load_policy(cfg, None)
        encodes = []
        encode_scene = policy.model.encode_scene
        policy.model.encode_scene = lambda batch: (encodes.append(len(batch["img"])), encode_scene(batch))[1]
        hp = PPOHyperParams(epochs=3, batch_size=2, learning_rate=1e-3, cache_scenes=cache,
                            recompute_old_log_probs=recompute)
        optimizer = torch.optim.AdamW(select_trainable(policy.model, hp.trainable), lr=hp.learning_rate)
        metrics = ppo_update(policy, optimizer, steps, hp, torch.device("cpu"), show_progress=False)
        runs[cache] = (metrics, encodes, [p.detach().clone() for p in policy.model.parameters() if p.requires_grad],
                       steps.image_reads)
        steps.image_reads = 0
    (cached, cached_encodes, cached_weights, cached_reads), (plain, plain_encodes, plain_weights, plain_reads) = (
        runs[True], runs[False])
    scored = 6 if recompute else 2  # score_steps: every step, or one minibatch for the behaviour gap
    assert sum(plain_encodes) == scored + 3 * 6 and plain_reads == scored + 3 * 6
    if recompute:  # all scored steps cached: the epochs encode nothing and read no images
        assert sum(cached_encodes) == 6 and cached_reads == 6
    else:  # a first-epoch minibatch with a step not yet cached encodes both of its steps
        assert 6 <= sum(cached_encodes) <= 8 and cached_reads == 2 + 6  # epochs 2-3 read no images
    assert cached == pytest.approx(plain, rel=1e-6, abs=1e-7) and cached["approx_kl"] > 0
    assert all(torch.equal(a, b) for a, b in zip(cached_weights, plain_weights))


def test_ppo_compile_setting_is_checked_before_loading_and_needs_compile_regions():
    from minddrive.errors import UserError
    from minddrive.models.acceleration import accelerate_for_ppo

    with pytest.raises(UserError, match="ppo.compile: expected None, a backend name or a dict, got 3"):
        PPOHyperParams.from_config(dict(compile=3))
    with pytest.raises(UserError, match=r"ppo.compile: unknown keys \['llm'\]"):
        PPOHyperParams.from_config(dict(compile=dict(llm="reduce-overhead")))
    assert PPOHyperParams.from_config(dict(compile=dict(llm_mode="reduce-overhead"))).compile == dict(
        llm_mode="reduce-overhead")
    with pytest.raises(UserError, match=r"ppo.compile: CorridorPolicy has no compile regions \(only MindDrive has\)"):
        accelerate_for_ppo(CorridorPolicy(hidden=16), "aot_eager")


def test_ppo_with_compiled_regions_updates_as_eager_on_the_tiny_vla():
    """``ppo.compile`` (here the ``aot_eager`` backend: the compiled graphs without Inductor's code generation)
    gives the eager update's losses and weights."""
    import inspect
    import sys

    from minddrive.config import load_config
    from minddrive.models.acceleration import accelerate_for_ppo, decompile_regions
    from minddrive.rollout.policy import load_policy

    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    from gpu_bench import SyntheticSteps

    cfg = load_config("adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py")
    steps = SyntheticSteps(4, tuple(cfg.env.image_size), seed=5)
    runs = []
    for spec in (None, "aot_eager"):
        torch.manual_seed(0)
        policy = load_policy(cfg, None)
        assert accelerate_for_ppo(policy, spec) is False  # no CUDA graphs either way
        assert "temperature" in inspect.signature(policy.evaluate_decisions).parameters  # what ppo_update reads
        hp = PPOHyperParams(epochs=2, batch_size=2, learning_rate=1e-3, recompute_old_log_probs=True)
        optimizer = torch.optim.AdamW(select_trainable(policy.model, hp.trainable), lr=hp.learning_rate)
        metrics = ppo_update(policy, optimizer, steps, hp, torch.device("cpu"), show_progress=False)
        runs.append((metrics, [p.detach().clone() for p in policy.model.parameters() if p.requires_grad]))
        decompile_regions(policy.model)
    (eager, eager_weights), (compiled, compiled_weights) = runs
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-6) and eager["approx_kl"] > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(compiled_weights, eager_weights))


def test_micro_batches_give_the_whole_minibatch_update(tmp_path):
    """Minibatches of 8 steps split into micro-batches of 3 (3 + 3 + 2): the gradients add up to the whole
    minibatch's, so the weights and logged means come out as without micro-batches (not bit-equal: the sums
    run in another order); the advantages are normalised over the whole minibatch, not per micro-batch."""
    torch.manual_seed(0)
    index = bandit_index(tmp_path, CorridorPolicy(hidden=16), n=24)
    runs = []
    for micro in (None, 3):
        torch.manual_seed(1)
        policy = CorridorPolicy(hidden=16)
        hp = PPOHyperParams(epochs=2, batch_size=8, learning_rate=0.01, micro_batch_size=micro, entropy_coef=0.01)
        optimizer = torch.optim.AdamW(select_trainable(policy, hp.trainable), lr=hp.learning_rate)
        metrics = ppo_update(policy, optimizer, StepDataset(index), hp, torch.device("cpu"), show_progress=False)
        runs.append((metrics, {k: v.detach().clone() for k, v in policy.named_parameters()}))
    (whole, whole_weights), (micro, micro_weights) = runs
    assert whole["approx_kl"] > 1e-6 and whole["clip_fraction"] >= 0
    assert micro == pytest.approx(whole, rel=1e-4, abs=1e-6)
    assert all(torch.allclose(micro_weights[k], whole_weights[k], atol=1e-5) for k in whole_weights)
    with pytest.raises(Exception, match=r"config: ppo.micro_batch_size = 0: expected None or an integer >= 1"):
        PPOHyperParams.from_config(dict(micro_batch_size=0))
