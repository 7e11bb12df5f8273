"""PPO on the decision expert, from a decoupled rollout index (read top to bottom, CleanRL style).

The rollouts were collected by separate workers (minddrive.rl.collector) and decoupled into steps with
GAE advantages and returns (minddrive.rl.decouple). One update is:

    old_log_prob = stored at rollout time, or the learner's own before the update (recompute_old_log_probs)
    for epoch in range(epochs):
        for minibatch in shuffled(steps):                        # batch_size per process
            scene      = the steps' scene tokens (frozen encoder: encoded once per update, SceneCache; steps
                         whose tokens are cached are read without their camera images, EpochSteps)
            log_probs_all, value, entropy = policy.evaluate_decisions(batch, actions, scene)
            ratio      = exp(log_prob(action) - old_log_prob(action))
            pg_loss    = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))   # A normalised per batch
            value_loss = mean((value - return) ** 2)
            kl_loss    = mean(sum_a p_old(a) * (log p_old(a) - log p_new(a)))       # exact: 7 stored log-probs
            loss       = pg_loss + value_coef * value_loss + kl_coef * kl_loss - entropy_coef * entropy
            # in micro_batch_size pieces where the minibatch does not fit one pass: the means are sums over its
            # steps / batch_size, gradients add up, one optimiser step per minibatch

Only the decision expert's LoRA and the value net train (``trainable`` name patterns); everything else
is frozen. Multi-GPU: ``torchrun`` starts one process per GPU; each takes a disjoint shard of every
shuffled epoch and gradients are averaged with one all-reduce per step (what DDP does, spelled out), or, with
``ppo.strategy=dict(type="deepspeed", zero_stage=2)``, by the trainer's DeepSpeed engine
(``minddrive.train.distributed``), which then owns the backward, clip and step.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from minddrive.errors import UserError
from minddrive.interfaces import TrainablePolicy
from minddrive.models.acceleration import accelerate_for_ppo, regional_compile_options
from minddrive.rl.buffer import checkpoint_fingerprint
from minddrive.rl import upstream_format
from minddrive.rl.decouple import load_index, read_step
from minddrive.rl.settings import config_file, read_settings, setting
from minddrive.rollout.driver import stack_memory
from minddrive.rollout.policy import load_policy, policy_module, save_policy
from minddrive.train.distributed import DistInfo, Engine, deepspeed_stage, wrap_model
from minddrive.utils.io import claim_dir, config_sha256, hash_files, read_pickled, run_lock


@dataclass
class PPOHyperParams:
    """Every knob of the PPO update (config key ``ppo``). The defaults are upstream's PPO as its code runs it
    (docs/rl_protocol.md): ratio and KL against the rollout-time log-probs, clip 0.2, value 0.5, KL 0.5, no
    entropy, 10 epochs of minibatches of 32 per GPU, advantages normalised per minibatch, AdamW at the learning
    rate its optimiser constructor gives the decision LoRA (8e-5 x 0.1), weight decay 1e-5, gradient clip 35.
    What differs: upstream's value-head bias trains at 3.2e-4 (its constructor's other group; here one rate for
    all), its learning rate follows a per-epoch cosine (constant here) under an fp16 dynamic loss scale, and
    ``recompute_old_log_probs`` (off by default, on in the GPU configs) is this project's option."""

    epochs: int = setting(10, "int", 1)                  # passes over the collected steps
    batch_size: int = setting(32, "int", 1)              # minibatch per process (upstream: samples_per_gpu 32)
    learning_rate: float = setting(8e-6, "number", 0)    # AdamW (upstream: lr 8e-5 x lm_head_decay_rate 0.1)
    weight_decay: float = setting(1e-5, "number", 0)
    clip_coef: float = setting(0.2, "number", 0, above=True)    # PPO ratio clip
    value_coef: float = setting(0.5, "number", 0)        # weight of the value MSE
    kl_coef: float = setting(0.5, "number", 0)           # weight of KL(rollout-time distribution || current)
    entropy_coef: float = setting(0.0, "number", 0)      # entropy bonus (upstream: none)
    max_grad_norm: float = setting(35.0, "number", 0, above=True)   # upstream: grad_clip max_norm 35
    normalize_advantages: bool = setting(True, "bool")   # per minibatch
    # Stop the update early once approx-KL exceeds this.
    target_kl: float | None = setting(None, "number", 0, above=True, optional=True)
    # Parameter-name patterns.
    trainable: tuple[str, ...] = setting(("decision_expert", "value_expert", "value_head"), "names")
    num_workers: int = setting(0, "int", 0)              # DataLoader processes reading step files
    # Temperature of the policy's distribution in the loss; must be the rollout's (the stored old
    # log-probs are of the temperature-scaled distribution). None: ``rollout.temperature``.
    temperature: float | None = setting(None, "number", 0, above=True, optional=True)
    # Score the steps with the learner before the first epoch and use those as the old log-probs. Where
    # rollouts run another numeric path than the learner (bf16 weights and merged adapters on the GPU vs
    # float32 masters under autocast), the stored log-probs differ from the learner's before any update
    # (``benchmarks/logprob_gap.py`` measures the gap), so ratios start away from 1 and the clip bites on noise.
    # Costs one gradient-free pass over the steps; the gap is logged as ``behaviour_log_prob_gap`` either way.
    recompute_old_log_probs: bool = setting(False, "bool")
    # Encode each step's cameras once per update and reuse the scene tokens in later epochs, where the scene
    # encoder is frozen (``SceneCache``). Off: every epoch re-encodes every step.
    cache_scenes: bool = setting(True, "bool")
    # The learner's regional torch.compile, as ``train_cfg.compile`` (``minddrive.models.acceleration``): a backend
    # name or dict(backend, mode, llm_mode); the GPU RL configs replay the LLM layers from CUDA graphs, since
    # the eager update is bound by launching small kernels. None: eager.
    compile: Any = None
    # Steps per forward and backward inside a minibatch (gradients add up; one optimiser step per minibatch of
    # ``batch_size``), for minibatches that do not fit the GPU in one pass. None: the whole minibatch.
    micro_batch_size: int | None = setting(None, "int", 1, optional=True)
    seed: int = setting(0, "int", 0)
    # How processes share the update. None: the bare model, gradients averaged by one all-reduce per step.
    # dict(type="deepspeed", zero_stage=0|1|2, config={...}): the trainer's DeepSpeed engine (``strategy`` of
    # ``minddrive.train.distributed.wrap_model``) owns backward, clipping at max_grad_norm and the step; ZeRO-2
    # partitions the optimiser state and gradients of the trainable parameters over the processes.
    strategy: Any = None

    @classmethod
    def from_config(cls, values: dict | None, where: str = "config") -> "PPOHyperParams":
        """From the ``ppo`` section; ``where`` (the config file) names the file in errors."""
        regional_compile_options((values or {}).get("compile"), "ppo.compile")  # fails before any loading
        check_ppo_strategy((values or {}).get("strategy"), where)
        return read_settings(cls, values, "ppo", where)


def check_ppo_strategy(strategy: Any, where: str = "config") -> None:
    """``ppo.strategy``: None or a DeepSpeed strategy whose keys and ZeRO stage the trainer's wrapper accepts."""
    if strategy is None:
        return
    if not isinstance(strategy, dict) or strategy.get("type") != "deepspeed":
        raise UserError(f"{where}: ppo.strategy = {strategy!r}: expected None (gradients averaged by one "
                        "all-reduce) or dict(type='deepspeed', zero_stage=0|1|2)")
    try:
        deepspeed_stage(dict(strategy))
    except UserError as error:
        raise UserError(f"{where}: ppo.{error}") from None


def ppo_settings(cfg: Any) -> PPOHyperParams:
    """The ``ppo`` section of a loaded config, with the run's ``seed`` unless ``ppo.seed`` is set."""
    return PPOHyperParams.from_config(dict(dict(seed=cfg.get("seed", 0)), **(cfg.get("ppo") or {})), config_file(cfg))


class StepDataset(Dataset):
    """The decoupled steps of one ``dataset_index.pkl`` (one file per step), in either layout: ours (a versioned
    dict of ``.pt`` steps, ``minddrive.rl.decouple``) or upstream's (a list of ``step_*.npz`` paths,
    ``minddrive.rl.upstream_format``). Upstream steps carry the decision LLM's input sequence instead of the
    observation; they are scored from it (:func:`evaluate_minibatch`)."""

    def __init__(self, index_path: str | os.PathLike):
        self.index_path = Path(index_path)
        index = read_pickled(self.index_path, "dataset index")
        self.upstream_paths = (upstream_format.step_paths(self.index_path, index)
                               if upstream_format.is_upstream_index(index) else None)
        self.entries = index if self.upstream_paths is not None else load_index(index_path)["steps"]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        return self.read(i)

    def read(self, i: int, images: bool = True) -> dict:
        """Step ``i``; ``images=False`` leaves its camera images PNG-packed on disk (see :class:`EpochSteps`)."""
        if self.upstream_paths is not None:
            return upstream_format.read_step(self.upstream_paths[i])
        return read_step(self.index_path, self.entries[i], images=images)


class EpochSteps(Dataset):
    """The steps ``order`` of ``dataset`` for one epoch. Those in ``without_images`` (their scene tokens are
    cached) are read without their camera images where the dataset can (``read(i, images=False)``): decoding a
    step's six 640x640 PNGs costs more host time than the GPU spends on the step in an epoch."""

    def __init__(self, dataset: Dataset, order: list[int], without_images: frozenset[int] = frozenset()):
        self.dataset, self.order = dataset, order
        self.without_images = without_images if hasattr(dataset, "read") else frozenset()

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j: int) -> dict:
        i = self.order[j]
        return self.dataset.read(i, images=False) if i in self.without_images else self.dataset[i]


def collate_steps(steps: list[dict]) -> dict:
    if "inputs_embeds" in steps[0]:  # steps that carry the decision sequence (upstream's layout)
        first = dict(upstream_format.pad_sequences([s["inputs_embeds"] for s in steps],
                                                   [s["new_input_ids"] for s in steps]))
    else:
        first = dict(obs=[s["obs"] for s in steps], memory=[s.get("memory") for s in steps])
    return dict(first, actions=torch.tensor([s["action"] for s in steps], dtype=torch.long),
                old_log_probs=torch.as_tensor(np.stack([s["log_probs"] for s in steps]), dtype=torch.float32),
                advantages=torch.tensor([s["advantage"] for s in steps], dtype=torch.float32),
                returns=torch.tensor([s["ret"] for s in steps], dtype=torch.float32),
                old_values=torch.tensor([s["value"] for s in steps], dtype=torch.float32))


def select_trainable(module: torch.nn.Module, groups: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Freeze everything except ``groups``: the model's own trainable groups when it defines them
    (MindDrive: LoRA adapters by name, heads), otherwise parameters whose name contains a group name."""
    if hasattr(module, "set_trainable"):
        module.set_trainable(groups)
    else:
        for name, param in module.named_parameters():
            param.requires_grad_(any(g in name for g in groups))
    trainable = [p for p in module.parameters() if p.requires_grad]
    if not trainable:
        raise UserError(f"ppo.trainable: no parameter belongs to any of {list(groups)}")
    return trainable


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); 1 is perfect, 0 no better than a constant."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def policy_batch(policy: TrainablePolicy, mb: dict) -> dict:
    """The run-time batch of a minibatch of steps (``policy.preprocess``, with the stored memory if any)."""
    return policy.preprocess(mb["obs"], memory=stack_memory(mb["memory"]))


def evaluate_minibatch(policy: TrainablePolicy, scenes: "SceneCache", indices: list[int], mb: dict,
                       actions: torch.Tensor, temperature: float):
    """``policy.evaluate_decisions`` on a minibatch of steps: from their observations (scene tokens cached), or,
    for steps that carry the decision sequence, from that sequence as upstream's PPO reads it."""
    if "inputs_embeds" in mb:
        return upstream_format.evaluate_sequences(policy, mb["inputs_embeds"], mb["new_input_ids"], mb["lengths"],
                                                  temperature=temperature)
    return scenes.evaluate(policy, indices, policy_batch(policy, mb), actions, temperature=temperature)


class SceneCache:
    """Scene tokens per step index, kept on the host for the rest of one PPO update.

    PPO trains the decision and value adapters and the value head; the ViT, query decoder and projector are
    frozen, so a step's scene tokens depend on its stored observation (and memory) alone. Without the cache
    every epoch re-encodes every step's six cameras (the ViT is ~3/4 of ``act``'s time at batch 1): ten
    encodes per step at the upstream 10 epochs where one gives the same tokens. A minibatch whose steps are
    all cached reuses them; otherwise it is encoded (without gradients) and its rows are kept. Host memory:
    scene tokens x hidden x 2 bytes per step under bf16 autocast (0.5B: 385 x 896, ~0.7 MB). Inactive for a
    policy whose ``scene_tokens`` gives none (no frozen scene encoder, or it trains). Each process keeps its own: as the epochs'
    shards change, a process encodes a step the first time it meets it (at most once, not once per epoch)."""

    def __init__(self, policy: TrainablePolicy, enabled: bool = True):
        self.enabled = enabled
        self.rows: dict[int, torch.Tensor] = {}

    def covers(self, indices: list[int]) -> bool:
        """Whether every step of ``indices`` has its scene tokens here (its images are then not needed)."""
        return self.enabled and all(i in self.rows for i in indices)

    def evaluate(self, policy: Any, indices: list[int], batch: dict, actions: torch.Tensor, **kwargs):
        """``policy.evaluate_decisions`` for the steps ``indices`` (run-time ``batch``), from their cached scene
        tokens where there are (or can be) some."""
        scene = self.tokens(policy, indices, batch, actions.device)
        return policy.evaluate_decisions(batch, actions, **kwargs, **({} if scene is None else dict(scene=scene)))

    def tokens(self, policy: Any, indices: list[int], batch: dict, device: torch.device) -> torch.Tensor | None:
        """The scene tokens of the minibatch of steps ``indices`` (run-time ``batch``), or None: encode in
        ``evaluate_decisions`` as usual."""
        if not self.enabled:
            return None
        if self.covers(indices):
            return torch.stack([self.rows[i] for i in indices]).to(device, non_blocking=True)
        scene = policy.scene_tokens(batch)
        if scene is None:  # the scene encoder trains: its tokens need gradients every time
            self.enabled = False
            return None
        self.rows.update(zip(indices, scene.detach().to("cpu").unbind(0)))
        return scene


def split_minibatch(mb: dict, indices: list[int], size: int) -> list[tuple[dict, list[int]]]:
    """``collate_steps`` output of a minibatch -> micro-batches of at most ``size`` steps, each with its step
    indices (one forward and backward each; ``ppo.micro_batch_size``)."""
    out = []
    for start in range(0, len(indices), size):
        part = slice(start, start + size)
        out.append(({key: value[part] for key, value in mb.items()}, indices[part]))
    return out


class GradientAveragingEngine(Engine):
    """PPO's default engine: the bare model; before the clip and step, every trainable gradient is averaged over
    the processes with one all-reduce each (a parameter without a gradient on this process counts as zeros)."""

    def step(self) -> torch.Tensor:
        _, world_size = _world()
        if world_size > 1:
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad)
                    p.grad /= world_size
        return super().step()


def ppo_engine(policy: TrainablePolicy, hp: PPOHyperParams, device: torch.device, cuda_graphed: bool = True) -> Engine:
    """AdamW over the policy's trainable parameters (:func:`select_trainable` first) inside the engine
    ``hp.strategy`` names. One optimiser step per minibatch: the loss of each micro-batch is already its share
    of the minibatch mean, so no engine divides it again (accumulate=1); ``Engine.backward``'s ``accumulating``
    marks the micro-batches before the minibatch's last. ``cuda_graphed``: the first micro-batch's gradients
    are copied out of CUDA-graph memory before the next replay (``own_gradients``)."""
    module = policy_module(policy)
    params = [p for p in module.parameters() if p.requires_grad]

    def make_optimizer(_module: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)

    if hp.strategy is None:
        engine = GradientAveragingEngine(module, module, make_optimizer(module), hp.max_grad_norm)
    else:
        rank, world_size = _world()
        info = DistInfo(rank=rank, world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                        device=device)
        engine = wrap_model(module, make_optimizer, info, dict(hp.strategy), hp.max_grad_norm, 1,
                            hp.micro_batch_size or hp.batch_size)
    engine.cuda_graphed = cuda_graphed
    return engine


def ppo_loss_rows(new_log_probs_all: torch.Tensor, new_values: torch.Tensor, entropy: torch.Tensor,
                  actions: torch.Tensor, old_log_probs_all: torch.Tensor, advantages: torch.Tensor,
                  returns: torch.Tensor, hp: PPOHyperParams) -> dict[str, torch.Tensor]:
    """The PPO loss and its diagnostics per step (B,): minibatch means are their sums over its micro-batches
    divided by the minibatch size. ``*_all``: log-probs of all 7 actions (B, 7)."""
    new_log_prob = new_log_probs_all.gather(1, actions[:, None]).squeeze(1)
    old_log_prob = old_log_probs_all.gather(1, actions[:, None]).squeeze(1)
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()

    # --- the loss terms
    pg_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - hp.clip_coef, 1 + hp.clip_coef))
    value_loss = (new_values - returns) ** 2
    kl_loss = (old_log_probs_all.exp() * (old_log_probs_all - new_log_probs_all)).sum(-1)
    loss = pg_loss + hp.value_coef * value_loss + hp.kl_coef * kl_loss - hp.entropy_coef * entropy

    # --- diagnostics (CleanRL's set)
    with torch.no_grad():
        approx_kl = (ratio - 1) - log_ratio                    # k3 estimator, Schulman 2020
        clip_fraction = ((ratio - 1).abs() > hp.clip_coef).float()
    return dict(loss=loss, pg_loss=pg_loss, value_loss=value_loss, kl_loss=kl_loss, entropy=entropy,
                approx_kl=approx_kl, clip_fraction=clip_fraction)


def score_steps(policy: TrainablePolicy, dataset: Dataset, hp: PPOHyperParams, device: torch.device,
                temperature: float = 1.0, scenes: SceneCache | None = None) -> tuple[torch.Tensor | None, float]:
    """(the learner's log-probs (N, 7) of every step, or None without ``hp.recompute_old_log_probs``; the mean
    |learner - stored| log-prob of the taken actions). Each process scores an interleaved shard; the shards
    are gathered so every process holds all N rows. Without gradients, before any update. The scene tokens
    encoded here go into ``scenes``, so the first epoch does not encode those steps again."""
    rank, world_size = _world()
    scenes = scenes or SceneCache(policy, enabled=False)
    shard = list(range(rank, len(dataset), world_size))
    if not hp.recompute_old_log_probs:
        shard = shard[:hp.batch_size]  # the gap from one minibatch is diagnostic enough
    size = hp.micro_batch_size or hp.batch_size  # the passes of the update's size (CUDA graphs, memory)
    loader = DataLoader(torch.utils.data.Subset(dataset, shard), batch_size=size, shuffle=False,
                        collate_fn=collate_steps, num_workers=hp.num_workers)
    rows, gap_sum = [], torch.zeros((), device=device)
    with torch.no_grad():
        for k, mb in enumerate(loader):
            actions = mb["actions"].to(device)
            log_probs, _, _ = evaluate_minibatch(policy, scenes, shard[k * size:(k + 1) * size], mb, actions,
                                                 temperature)
            stored = mb["old_log_probs"].to(device)
            gap_sum += (log_probs.float() - stored).gather(1, actions[:, None]).abs().sum()
            rows.append(log_probs.float())
    counts = torch.tensor([float(len(shard))], device=device)
    if world_size > 1:
        dist.all_reduce(gap_sum), dist.all_reduce(counts)
    gap = float(gap_sum / counts.clamp(min=1))
    if not hp.recompute_old_log_probs:
        return None, gap
    mine = torch.cat(rows) if rows else torch.zeros(0, 7, device=device)
    if world_size == 1:
        return mine.cpu(), gap
    per_rank = -(-len(dataset) // world_size)  # all_gather needs equal sizes: pad each shard
    padded = torch.zeros(per_rank, mine.shape[1], device=device)
    padded[:len(mine)] = mine
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    scores = torch.empty(len(dataset), mine.shape[1])
    for r, rows_r in enumerate(gathered):
        scores[r::world_size] = rows_r[:len(range(r, len(dataset), world_size))].cpu()
    return scores, gap


def ppo_update(policy: TrainablePolicy, optimizer: torch.optim.Optimizer | Engine, dataset: Dataset,
               hp: PPOHyperParams, device: torch.device, writer: SummaryWriter | None = None,
               log_path: Path | None = None, global_step: int = 0, show_progress: bool = True) -> dict:
    """Run ``hp.epochs`` PPO epochs over ``dataset``; returns the last epoch's mean metrics. ``optimizer``: an
    :class:`Engine` (:func:`ppo_engine`), or an optimiser over the trainable parameters, which then steps in
    the default engine (gradients averaged by all-reduce, clipped at ``hp.max_grad_norm``)."""
    rank, world_size = _world()
    if isinstance(optimizer, Engine):
        engine = optimizer
    else:
        module = policy_module(policy)
        engine = GradientAveragingEngine(module, module, optimizer, hp.max_grad_norm)
        engine.cuda_graphed = True  # unknown here: copy the first micro-batch's gradients as if graphed
    generator = torch.Generator().manual_seed(hp.seed)
    temperature = 1.0 if hp.temperature is None else float(hp.temperature)
    scenes = SceneCache(policy, hp.cache_scenes)
    learner_log_probs, behaviour_gap = score_steps(policy, dataset, hp, device, temperature, scenes)
    epoch_metrics: dict[str, float] = {}
    for epoch in range(hp.epochs):
        # The same permutation on every rank; each rank takes an equal interleaved shard (equal shards =
        # equal numbers of minibatches, so every rank joins every gradient all-reduce).
        per_rank = len(dataset) // world_size
        order = torch.randperm(len(dataset), generator=generator)[:per_rank * world_size][rank::world_size].tolist()
        cached = frozenset(order) if scenes.covers(order) else frozenset()  # their images are not needed
        loader = DataLoader(EpochSteps(dataset, order, cached), batch_size=hp.batch_size, shuffle=False,
                            collate_fn=collate_steps, num_workers=hp.num_workers, drop_last=False)
        sums: dict[str, float] = {}
        batches = 0
        value_pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (V(s), return) of the epoch, for its EV
        for k, mb in enumerate(tqdm(loader, desc=f"ppo epoch {epoch + 1}/{hp.epochs}",
                                    disable=not show_progress or rank != 0, leave=False)):
            indices = order[k * hp.batch_size:(k + 1) * hp.batch_size]  # this minibatch's steps
            if hp.recompute_old_log_probs:  # the learner's own scores of these steps, before this update
                mb["old_log_probs"] = learner_log_probs[indices]
            # --- advantages normalised per minibatch (before it splits into micro-batches)
            if hp.normalize_advantages and len(indices) > 1:
                mb["advantages"] = (mb["advantages"] - mb["advantages"].mean()) / (mb["advantages"].std() + 1e-8)

            # --- the loss over the minibatch, one micro-batch at a time; gradients add up
            engine.zero_grad()
            row_sums: dict[str, torch.Tensor] = {}
            micro_batches = split_minibatch(mb, indices, hp.micro_batch_size or len(indices))
            for m, (micro, micro_indices) in enumerate(micro_batches):
                actions = micro["actions"].to(device)
                # current policy on the stored decisions (the exact rollout-time inputs, memory included); the
                # frozen scene encoder's tokens from the cache (encoded once per update)
                new_log_probs_all, new_values, entropy = evaluate_minibatch(
                    policy, scenes, micro_indices, micro, actions, temperature)
                rows = ppo_loss_rows(new_log_probs_all, new_values, entropy, actions,
                                     micro["old_log_probs"].to(device), micro["advantages"].to(device),
                                     micro["returns"].to(device), hp)
                # the minibatch mean, micro-batch by micro-batch; one step after the last (graphed LLM layers,
                # ppo.compile: the engine copies the first micro-batch's gradients, a few MB of adapters)
                engine.backward(rows["loss"].sum() / len(indices), accumulating=m < len(micro_batches) - 1)
                for key, value in rows.items():
                    row_sums[key] = row_sums.get(key, 0.0) + value.detach().sum()
                value_pairs.append((new_values.detach().float().cpu(), micro["returns"].float()))
            grad_norm = engine.step()  # average over processes, clip, step

            metrics = {key: float(value) / len(indices) for key, value in row_sums.items()}
            metrics["grad_norm"] = float(grad_norm)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
            global_step += 1
            if rank == 0 and writer is not None:
                for key, value in metrics.items():
                    writer.add_scalar(f"ppo/{key}", value, global_step)
        epoch_metrics = {k: v / max(batches, 1) for k, v in sums.items()}
        # Over the whole epoch, not averaged per minibatch: a minibatch of equal returns (or of one step)
        # has no variance to explain and made the epoch's mean NaN.
        if value_pairs:
            epoch_metrics["explained_variance"] = explained_variance(
                torch.cat([v for v, _ in value_pairs]), torch.cat([r for _, r in value_pairs]))
        epoch_metrics.update(epoch=epoch + 1, step=global_step, behaviour_log_prob_gap=behaviour_gap)
        if rank == 0 and log_path is not None:
            with open(log_path, "a") as handle:
                handle.write(json.dumps(epoch_metrics) + "\n")
        if hp.target_kl is not None and epoch_metrics.get("approx_kl", 0.0) > hp.target_kl:
            break
    return epoch_metrics


# --- the job: load, train, save ------------------------------------------------------------------------
def train_ppo(cfg: Any, ckpt: str | os.PathLike, index_path: str | os.PathLike, work_dir: str | os.PathLike,
              show_progress: bool = True, overwrite: bool = False) -> dict:
    """``minddrive ppo``: PPO from ``ckpt`` on ``index_path``; writes ``work_dir/ckpt`` (rank 0).

    ``work_dir`` is this command's own folder (``utils.io.claim_dir``): its owner record names the
    config, checkpoint and index content the run was made from. The same run again trains afresh into
    it; a folder of another run, another command or of nobody is refused in one line (``overwrite``
    moves it aside), and a lock stops two runs writing into it at once.
    """
    hp = ppo_settings(cfg)
    dataset = StepDataset(index_path)   # a damaged index fails before anything is written
    if len(dataset) == 0:
        raise UserError(f"{index_path}: the index has no steps")
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))
    if rank != 0:   # rank 0 alone claims the folder and holds its lock
        return _train_ppo(cfg, hp, ckpt, dataset, Path(work_dir), show_progress)
    identity = dict(config_sha256=config_sha256(cfg), checkpoint_sha256=checkpoint_fingerprint(ckpt),
                    index_sha256=hash_files([index_path]))
    claim_dir(work_dir, "ppo", identity, overwrite=overwrite)
    with run_lock(work_dir, "PPO run"):
        return _train_ppo(cfg, hp, ckpt, dataset, Path(work_dir), show_progress)


def _train_ppo(cfg: Any, hp: PPOHyperParams, ckpt: str | os.PathLike, dataset: StepDataset, work_dir: Path,
               show_progress: bool) -> dict:
    from minddrive.utils.seed import seed_everything

    if hp.temperature is None:
        hp.temperature = float((cfg.get("rollout") or {}).get("temperature", 1.0))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, _ = _world()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    seed_everything(hp.seed + rank)
    work_dir.mkdir(parents=True, exist_ok=True)

    policy = load_policy(cfg, ckpt, device=str(device))
    graphed = accelerate_for_ppo(policy, hp.compile)
    select_trainable(policy_module(policy), hp.trainable)
    engine = ppo_engine(policy, hp, device, cuda_graphed=graphed)
    writer = SummaryWriter(str(work_dir / "tensorboard")) if rank == 0 else None
    started = time.monotonic()
    metrics = ppo_update(policy, engine, dataset, hp, device, writer=writer, log_path=work_dir / "ppo_log.jsonl",
                         show_progress=show_progress)
    metrics.update(steps=len(dataset), seconds=time.monotonic() - started)
    out = work_dir / "ckpt"
    if rank == 0:
        writer.close()
        save_policy(policy, out, cfg, meta=dict(stage="rl", source_ckpt=str(ckpt), index=str(dataset.index_path),
                                                hyper_params=asdict(hp), metrics=metrics))
    if distributed:
        dist.barrier()
    return dict(metrics, ckpt=str(out))
