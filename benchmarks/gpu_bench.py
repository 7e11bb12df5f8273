"""One-GPU benchmark of MindDrive at real shapes with random weights (issue #10).

Every figure is reported next to the baseline or ceiling it is judged against, measured in the same run:

0. ceiling   bf16 matmul throughput (8192^3, CUDA events, warm-up, median) and the device name;
1. il_step   stage-3 imitation step (6 cameras, EVA-02-L-shaped ViT, Qwen2 LLM, scene tokens + a QA
             conversation of ``text_len`` tokens): samples/s, peak memory, and MFU = FLOPs executed per
             step (``FlopCounterMode`` over one step) / step time / measured ceiling. Batch 4 first, then
             the same with gradient checkpointing, then 2, then 1, until one fits;
2. rollout   ``policy.act`` latency at batch 1 (median of ~20 after warm-up) and decisions/s at larger
             batches, against token-by-token generation (``MindDrive.decide_by_generation``);
3. ppo       samples/s of ``minddrive.rl.ppo.ppo_update`` at batch 32 on synthetic rollout steps, both
             end to end (numpy observations through ``policy.preprocess``) and with the batch already on
             the device (model compute only).

Each measurement is guarded: a failure (e.g. out of memory at 3B) is recorded in the JSON and the run goes
on. ``--size all`` runs each size in its own child process so a poisoned CUDA context cannot take the
other sizes down.

    python benchmarks/gpu_bench.py --size all --out $OUT            # on the GPU machine
    python benchmarks/gpu_bench.py --size tiny --device cpu --steps 2 --out /tmp/b   # CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere (the device copies the repo, no install)
    sys.path.insert(0, str(REPO_ROOT))

CONFIG_DIR = REPO_ROOT / "adzoo" / "minddrive" / "configs" / "_base_" / "models"

# Public architecture facts of the two LLMs (Hugging Face config.json of Qwen2-0.5B and Qwen2.5-3B); random
# weights are built from them because no checkpoint can be downloaded on the device machines.
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)
QWEN25_3B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                 num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)
# Used only when the size's own model config file does not exist yet (DESIGN.md §2 shapes).
EVA02_L = dict(type="EVA02ViT", img_size=(640, 640), patch_size=16, embed_dim=1024, depth=24, num_heads=16,
               window_size=16, global_every=3)
REAL_QUERY_DECODER = dict(type="SceneQueryDecoder", embed_dim=256, num_object_queries=600, num_lane_queries=300,
                          num_layers=6, num_heads=8, ffn_dim=2048, memory_size=256, aux_heads=True, lane_points=20)


@dataclass(frozen=True)
class SizeSpec:
    """One benchmarked model size and the shapes it is measured at."""

    name: str
    config: str                              # file under CONFIG_DIR; the tiny config stands in if it is missing
    llm_shape: dict | None                   # Qwen2Config kwargs forced onto the config (None: keep the config's)
    text_len: int                            # conversation tokens of one IL sample (before scene splicing)
    il_batches: tuple[int, ...] = (4, 2, 1)  # tried in order until one fits
    act_batches: tuple[int, ...] = (8, 32, 64)
    gen_batches: tuple[int, ...] = (1, 32)
    ppo_batch: int = 32
    ppo_minibatches: int = 3
    latency_runs: int = 20
    ceiling_n: int = 8192


SIZES = {
    "tiny": SizeSpec("tiny", "minddrive_tiny.py", None, text_len=96, il_batches=(2, 1), act_batches=(4,),
                     gen_batches=(1, 4), ppo_batch=4, ppo_minibatches=2, latency_runs=3, ceiling_n=512),
    "05b": SizeSpec("05b", "minddrive_qwen2_05b.py", QWEN2_05B, text_len=320),
    "3b": SizeSpec("3b", "minddrive_qwen25_3b.py", QWEN25_3B, text_len=320, act_batches=(8, 32),
                   gen_batches=(1, 32)),
}
# Upstream answers the decision in plain words, "The car should be maintain moderate speed lanefollow." after
# the question: about 12 Qwen2 tokens generated one by one (our prompt already ends with the prefix and the
# meta-actions are single tokens, so 2 new tokens is the cheapest generation baseline).
UPSTREAM_ANSWER_TOKENS = 12


# ----------------------------------------------------------------------------------------------------------
# Model and synthetic inputs
# ----------------------------------------------------------------------------------------------------------
def model_config(spec: SizeSpec) -> tuple[dict, tuple[int, int], str]:
    """(model cfg dict, camera input (H, W), where it came from) with device-safe overrides.

    The device machines have no checkpoints: the tokenizer is the tiny one (token ids only index the
    LLM's embedding table, so shapes are unaffected), the LLM gets its public shape with random weights,
    and no backbone weight file is read.
    """
    from minddrive.config import load_config

    path = CONFIG_DIR / spec.config
    source = str(path.relative_to(REPO_ROOT))
    if not path.is_file():
        path, source = CONFIG_DIR / "minddrive_tiny.py", f"minddrive_tiny.py + real shapes ({spec.config} missing)"
        fallback = True
    else:
        fallback = False
    cfg = load_config(path)
    model = copy.deepcopy(cfg.to_dict()["model"])
    image_size = tuple(cfg.get("image_size", (640, 640)))
    llm = model["llm"]
    llm["tokenizer"] = dict(type="tiny", vocab_size=512)
    llm.pop("pretrained", None)
    llm["gradient_checkpointing"] = False  # switched on only when a batch does not fit
    llm["attn_implementation"] = "sdpa"
    if spec.llm_shape is not None:
        llm["config"] = dict(spec.llm_shape)
    model["vision"]["backbone"].pop("pretrained", None)
    if fallback and spec.llm_shape is not None:
        model["vision"]["backbone"] = dict(EVA02_L)
        model["query_decoder"] = dict(REAL_QUERY_DECODER)
        model["scene_tokens"] = dict(num_object_tokens=600, num_lane_tokens=300)
        image_size = (640, 640)
    if model["vision"]["backbone"].get("type") == "EVA02ViT":
        model["vision"]["backbone"]["grad_checkpoint"] = False
    return model, image_size, source


def build_model(spec: SizeSpec, device: torch.device):
    from minddrive.registry import MODELS, build

    cfg, image_size, source = model_config(spec)
    started = time.perf_counter()
    model = build(cfg, MODELS, where="model")  # on CPU: the model's seeded init draws from CPU generators
    model.to(device)
    return model, image_size, dict(config=source, build_s=round(time.perf_counter() - started, 1),
                                   params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                                   trainable_m=round(sum(p.numel() for p in model.parameters()
                                                         if p.requires_grad) / 1e6, 2))


def set_gradient_checkpointing(model, enabled: bool) -> None:
    """Recompute activations in backward for the ViT blocks and the LLM layers."""
    if hasattr(model.backbone, "grad_checkpoint"):
        model.backbone.grad_checkpoint = enabled
    causal = model.llm.peft.base_model.model
    # transformers 5 renamed gradient_* to activation_checkpointing_*; the old names warn.
    prefix = "activation_checkpointing" if hasattr(causal, "activation_checkpointing_enable") else "gradient_checkpointing"
    if enabled:
        getattr(causal, f"{prefix}_enable")(**{f"{prefix}_kwargs": {"use_reentrant": False}})
    else:
        getattr(causal, f"{prefix}_disable")()


def runtime_batch(batch_size: int, image_size: tuple[int, int], device: torch.device, seed: int = 0) -> dict:
    """Observation-side batch keys (interfaces.py) with the real camera rig and random images."""
    from minddrive.sim.base import NUM_ROUTE_POINTS
    from minddrive.sim.sensors import camera_calibration
    from minddrive.constants import EGO_STATE_DIM, NUM_PATH_ACTIONS

    gen = torch.Generator().manual_seed(seed)
    h, w = image_size
    calib = {k: torch.from_numpy(v) for k, v in camera_calibration(width=w, height=h).items()}
    b = batch_size
    route = torch.stack([torch.arange(1, NUM_ROUTE_POINTS + 1) * 2.0, torch.zeros(NUM_ROUTE_POINTS)], -1)
    batch = {"img": torch.randint(0, 256, (b, 6, 3, h, w), generator=gen).float(),
             "ego_state": torch.rand(b, EGO_STATE_DIM, generator=gen) * 5,
             "target_point": torch.tensor([[20.0, 0.0]]).repeat(b, 1),
             "route": route.unsqueeze(0).repeat(b, 1, 1),
             "command": torch.randint(0, NUM_PATH_ACTIONS, (b,), generator=gen)}
    batch.update({k: v.unsqueeze(0).repeat(b, *([1] * v.ndim)) for k, v in calib.items()})
    return {k: v.to(device) for k, v in batch.items()}


def training_batch(model, batch_size: int, image_size: tuple[int, int], text_len: int, device: torch.device,
                   seed: int = 0) -> dict:
    """A full stage-3 training batch: runtime keys + a QA conversation of ``text_len`` tokens with planning.

    The conversation is token ids drawn from the tokenizer's ordinary range with the one ``<image>`` token
    near the start, three answers (labels kept, ~45% of the text, as the long VQA answers of stage 3) and
    the two waypoint query tokens at the end of the last answer.
    """
    from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS, NUM_SPEED_ACTIONS

    gen = torch.Generator().manual_seed(seed + 1)
    batch = runtime_batch(batch_size, image_size, torch.device("cpu"), seed)
    b, n = batch_size, text_len
    vocab = min(len(model.tokenizer), 400)  # ordinary (non-special) ids of the tiny tokenizer
    ids = torch.randint(3, vocab, (b, n), generator=gen)
    ids[:, 16] = model.image_token_id
    ids[:, n - 4], ids[:, n - 3] = model.waypoint_token_id, model.path_token_id
    labels = torch.full((b, n), -100)
    for start, end in ((int(n * 0.25), int(n * 0.4)), (int(n * 0.5), int(n * 0.7)), (int(n * 0.85), n - 1)):
        labels[:, start:end] = ids[:, start:end]
    t = torch.arange(1, NUM_FUTURE_WAYPOINTS + 1, dtype=torch.float32)
    agents = torch.zeros(b, 4, NUM_FUTURE_WAYPOINTS, 5)
    agents[..., 0], agents[..., 1], agents[..., 2], agents[..., 3] = 15.0 + t, 3.5, 4.5, 2.0
    bounds = torch.stack([torch.linspace(-10, 60, 20), torch.full((20,), 5.0)], -1)
    batch.update(
        input_ids=ids, attention_mask=torch.ones(b, n, dtype=torch.long), labels=labels,
        ego_history=torch.zeros(b, 4, 2),
        ego_fut_traj=torch.stack([t * 2.0, torch.zeros_like(t)], -1).repeat(b, 1, 1),
        ego_fut_mask=torch.ones(b, NUM_FUTURE_WAYPOINTS),
        path_points=torch.stack([torch.arange(1, NUM_PATH_POINTS + 1) * 2.0, torch.zeros(NUM_PATH_POINTS)], -1
                                ).repeat(b, 1, 1),
        path_mask=torch.ones(b, NUM_PATH_POINTS),
        speed_action=torch.randint(0, NUM_SPEED_ACTIONS, (b,), generator=gen), path_action=batch["command"].clone(),
        agent_boxes=agents, agent_mask=torch.ones(b, 4, NUM_FUTURE_WAYPOINTS),
        map_boundaries=torch.stack([bounds, bounds * torch.tensor([1.0, -1.0])]).repeat(b, 1, 1, 1),
        map_mask=torch.ones(b, 2, 20), has_planning=torch.ones(b, dtype=torch.bool))
    return {k: v.to(device) for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls after ``warmup`` untimed ones (device synchronised around each)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # process peak RSS (KiB -> GiB)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def guarded(results: dict, name: str, fn: Callable[[], dict], device: torch.device) -> dict | None:
    """Run one measurement; on failure record the error under ``results[name]`` and carry on."""
    started = time.perf_counter()
    try:
        value = fn()
        value["wall_s"] = round(time.perf_counter() - started, 1)
        results[name] = value
        return value
    except Exception as exc:  # a benchmark must report, not crash: OOM at 3B is an expected outcome
        results[name] = dict(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                             oom=is_out_of_memory(exc), wall_s=round(time.perf_counter() - started, 1))
        print(f"[{name}] failed: {results[name]['error']}", file=sys.stderr)
        if not is_out_of_memory(exc):
            traceback.print_exc(limit=6)
        return None
    finally:
        free_memory(device)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------------------
# 0. Ceiling
# ----------------------------------------------------------------------------------------------------------
def matmul_ceiling(device: torch.device, n: int, runs: int = 20) -> dict:
    """Median FLOP/s of an n^3 matmul (bf16 on CUDA, fp32 on CPU) timed with CUDA events."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    times = []
    for _ in range(runs if device.type == "cuda" else 3):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return dict(device=name, dtype=str(dtype).replace("torch.", ""), n=n, median_ms=round(seconds * 1e3, 3),
                flops_per_s=2 * n**3 / seconds, tflops=round(2 * n**3 / seconds / 1e12, 4))


# ----------------------------------------------------------------------------------------------------------
# 1. Imitation-learning step
# ----------------------------------------------------------------------------------------------------------
def make_optimizer(model):
    """The stage-3 optimiser (DESIGN.md §3): AdamW 8e-5, wd 1e-5, layer-wise decay 0.9 over the ViT."""
    from minddrive.registry import OPTIMIZERS, build

    depth = len(getattr(model.backbone, "blocks", [])) or 1
    cfg = dict(type="AdamW", lr=8e-5, weight_decay=1e-5,
               paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=depth, backbone_prefix="backbone"))
    return build(cfg, OPTIMIZERS, where="optimizer", model=model)


def il_train_step(model, optimizer, batch: dict, device: torch.device, grad_clip: float = 35.0) -> float:
    """One stage-3 step exactly as the trainer does it: autocast forward, backward, clip, AdamW step."""
    from minddrive.train.trainer import total_loss

    with autocast(device):
        loss = total_loss(model(batch))
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs executed by ``fn`` (matmuls, convolutions, attention), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def bench_il_step(model, spec: SizeSpec, image_size, device, steps: int, ceiling_tflops: float | None) -> dict:
    model.train()
    optimizer = make_optimizer(model)
    attempts = []
    for batch_size in spec.il_batches:
        for checkpointing in (False, True):
            set_gradient_checkpointing(model, checkpointing)
            try:
                batch = training_batch(model, batch_size, image_size, spec.text_len, device)
                reset_peak_memory(device)
                loss = il_train_step(model, optimizer, batch, device)  # also allocates AdamW state
                flops = count_flops(lambda: il_train_step(model, optimizer, batch, device))
                times = time_calls(lambda: il_train_step(model, optimizer, batch, device), device,
                                   warmup=1, runs=steps)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                oom = True
            else:
                oom = False
            if oom:  # outside the except block, so the traceback's frames (and their activations) are gone
                attempts.append(dict(batch=batch_size, grad_checkpointing=checkpointing, oom=True))
                optimizer.zero_grad(set_to_none=True)
                batch = None
                free_memory(device)
                continue
            step_s = statistics.median(times)
            out = dict(batch=batch_size, grad_checkpointing=checkpointing, loss_first=round(loss, 4),
                       step_ms=round(step_s * 1e3, 1), samples_per_s=round(batch_size / step_s, 2),
                       flop_per_step=flops, tflop_per_step=round(flops / 1e12, 4), achieved_tflops=round(flops / step_s / 1e12, 1),
                       peak_mem_gib=peak_memory_gib(device), seq_len_text=spec.text_len,
                       scene_tokens=model.num_object_tokens + model.num_lane_tokens + 1, attempts=attempts)
            if ceiling_tflops:
                out["mfu_vs_ceiling"] = round(flops / step_s / 1e12 / ceiling_tflops, 4)
            set_gradient_checkpointing(model, False)
            del optimizer
            return out
    raise RuntimeError(f"out of memory at every batch size {spec.il_batches} with and without checkpointing")


# ----------------------------------------------------------------------------------------------------------
# 2. Rollout inference
# ----------------------------------------------------------------------------------------------------------
def bench_rollout(model, spec: SizeSpec, image_size, device) -> dict:
    from minddrive.models import MindDrivePolicy

    policy = MindDrivePolicy(model, device)
    model.eval()
    out: dict[str, Any] = {}
    batch = runtime_batch(1, image_size, device, seed=1)
    times = time_calls(lambda: policy.act(batch, sample=False), device, warmup=3, runs=spec.latency_runs)
    out["act_b1_ms"] = round(statistics.median(times) * 1e3, 2)
    out["act_b1_p90_ms"] = round(float(np.percentile(times, 90)) * 1e3, 2)
    out["act_b1_target_ms"] = 30.0
    out["act_b1_meets_target"] = out["act_b1_ms"] < 30.0
    out["act_decisions_per_s"] = {"1": round(1.0 / statistics.median(times), 1)}
    for b in spec.act_batches:
        try:
            batch = runtime_batch(b, image_size, device, seed=b)
            reset_peak_memory(device)
            t = statistics.median(time_calls(lambda: policy.act(batch, sample=True), device, warmup=1, runs=3))
            out["act_decisions_per_s"][str(b)] = round(b / t, 1)
            out[f"act_b{b}_peak_mem_gib"] = peak_memory_gib(device)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            out["act_decisions_per_s"][str(b)] = "oom"
        finally:
            batch = None
            free_memory(device)

    # Baseline: greedy generation of the decision with the decision adapter (scene encoding included, as in act).
    for new_tokens, key in ((2, "generate2_decisions_per_s"), (UPSTREAM_ANSWER_TOKENS, "generate_upstream_decisions_per_s")):
        out[key] = {}
        for b in spec.gen_batches:
            batch = runtime_batch(b, image_size, device, seed=100 + b)

            def generate():
                with autocast(device):
                    return model.decide_by_generation(batch, max_new_tokens=new_tokens)

            try:
                t = statistics.median(time_calls(generate, device, warmup=1, runs=3))
                out[key][str(b)] = round(b / t, 2)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                out[key][str(b)] = "oom"
            finally:
                free_memory(device)
    model.use_adapter("action_expert")
    big = str(max(spec.gen_batches))
    act_big, gen_big = out["act_decisions_per_s"].get(big), out["generate2_decisions_per_s"].get(big)
    if big == "1":
        act_big = out["act_decisions_per_s"]["1"]
    if isinstance(act_big, float) and isinstance(gen_big, float):
        out[f"speedup_vs_generate2_b{big}"] = round(act_big / gen_big, 2)
        up = out["generate_upstream_decisions_per_s"].get(big)
        if isinstance(up, float):
            out[f"speedup_vs_upstream_generate_b{big}"] = round(act_big / up, 2)
        out["speedup_target"] = 10.0
    return out


# ----------------------------------------------------------------------------------------------------------
# 3. PPO update
# ----------------------------------------------------------------------------------------------------------
class PPOPolicyAdapter(torch.nn.Module):
    """What ``minddrive.rl.ppo.ppo_update`` expects of a policy (an ``nn.Module`` with ``preprocess`` and
    ``evaluate_decisions``) around a :class:`MindDrivePolicy`, which is a plain class holding the model.

    ``staged`` (a device batch) makes ``preprocess`` return its first ``len(obs)`` rows instead of converting
    numpy observations, to measure the model's compute without the host-side image conversion.
    """

    PPO_TRAINABLE = ("decision_expert", "value_expert", "value_head")

    def __init__(self, policy, staged: dict | None = None):
        super().__init__()
        self.model = policy.model
        self.policy = policy
        self.staged = staged
        self.model.set_trainable(self.PPO_TRAINABLE)  # use_adapter re-applies this set on every switch

    def preprocess(self, obs_list):
        if self.staged is not None:
            return {k: v[:len(obs_list)] for k, v in self.staged.items()}
        return self.policy.preprocess(obs_list)

    def evaluate_decisions(self, batch, actions):
        return self.policy.evaluate_decisions(batch, actions)


class SyntheticSteps(torch.utils.data.Dataset):
    """Decoupled rollout steps as ``minddrive.rl.decouple.read_step`` returns them, of the right shapes:
    the stored observation, the action, all 7 rollout-time log-probs, value, advantage and return."""

    def __init__(self, count: int, image_size: tuple[int, int], seed: int = 0, with_images: bool = True):
        from minddrive.constants import EGO_STATE_DIM, NUM_SPEED_ACTIONS
        from minddrive.sim.base import NUM_ROUTE_POINTS
        from minddrive.sim.sensors import camera_calibration

        rng = np.random.default_rng(seed)
        h, w = image_size
        self.count = count
        self.obs = None
        if with_images:  # one shared observation: the cost measured is the conversion, not the disk
            self.obs = dict(images=rng.integers(0, 256, (6, h, w, 3), dtype=np.uint8),
                            ego_state=rng.random(EGO_STATE_DIM, dtype=np.float32), command=0,
                            target_point=np.array([20.0, 0.0], np.float32),
                            route=np.stack([np.arange(1, NUM_ROUTE_POINTS + 1) * 2.0,
                                            np.zeros(NUM_ROUTE_POINTS)], -1).astype(np.float32),
                            **camera_calibration(width=w, height=h))
        logits = rng.normal(size=(count, NUM_SPEED_ACTIONS))
        self.log_probs = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
        self.actions = rng.integers(0, NUM_SPEED_ACTIONS, count)
        self.values = rng.normal(size=count).astype(np.float32)
        self.advantages = rng.normal(size=count).astype(np.float32)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict:
        return dict(obs=self.obs if self.obs is not None else i, memory=None, action=int(self.actions[i]),
                    log_probs=self.log_probs[i], value=float(self.values[i]), advantage=float(self.advantages[i]),
                    ret=float(self.values[i] + self.advantages[i]))


def ppo_samples_per_s(adapter, dataset, batch_size: int, device: torch.device, seed: int = 0) -> tuple[float, dict]:
    """One PPO epoch over ``dataset`` (after a one-minibatch warm-up); samples/s and the last metrics."""
    from minddrive.rl.ppo import PPOHyperParams, ppo_update, select_trainable

    hp = PPOHyperParams(epochs=1, batch_size=batch_size, seed=seed)
    params = select_trainable(adapter, hp.trainable)
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warm = torch.utils.data.Subset(dataset, range(min(batch_size, len(dataset))))
    ppo_update(adapter, optimizer, warm, hp, device, show_progress=False)
    synchronize(device)
    start = time.perf_counter()
    metrics = ppo_update(adapter, optimizer, dataset, hp, device, show_progress=False)
    synchronize(device)
    # Ranks take disjoint shards of the dataset (ppo_update), so this is the global rate under torchrun too.
    return len(dataset) / (time.perf_counter() - start), metrics


def bench_ppo(model, spec: SizeSpec, image_size, device) -> dict:
    from minddrive.models import MindDrivePolicy

    policy = MindDrivePolicy(model, device)
    count = spec.ppo_batch * spec.ppo_minibatches
    out: dict[str, Any] = dict(batch=spec.ppo_batch, minibatches=spec.ppo_minibatches)
    staged = runtime_batch(spec.ppo_batch, image_size, device, seed=7)
    staged["command"].zero_()
    reset_peak_memory(device)
    rate, metrics = ppo_samples_per_s(PPOPolicyAdapter(policy, staged), SyntheticSteps(count, image_size,
                                                                                        with_images=False),
                                      spec.ppo_batch, device)
    out.update(compute_samples_per_s=round(rate, 2), peak_mem_gib=peak_memory_gib(device),
               loss=round(metrics["loss"], 4), approx_kl=round(metrics["approx_kl"], 5))
    staged = None
    free_memory(device)
    rate, _ = ppo_samples_per_s(PPOPolicyAdapter(policy), SyntheticSteps(count, image_size), spec.ppo_batch, device)
    out["end_to_end_samples_per_s"] = round(rate, 2)
    model.set_trainable(("action_expert", "vision", "projector", "query_decoder", "trajectory_head"))
    model.use_adapter("action_expert")
    return out


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------
def run_size(spec: SizeSpec, device: torch.device, steps: int, ceiling_n: int | None) -> dict:
    from minddrive.utils.seed import seed_everything

    seed_everything(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    results: dict[str, Any] = dict(size=spec.name, torch=torch.__version__)
    guarded(results, "ceiling", lambda: matmul_ceiling(device, ceiling_n or spec.ceiling_n), device)
    flops_per_s = results["ceiling"].get("flops_per_s")
    ceiling = flops_per_s / 1e12 if flops_per_s else None
    holder: dict[str, Any] = {}

    def build():
        model, image_size, info = build_model(spec, device)
        holder.update(model=model, image_size=image_size)
        return dict(info, image_size=list(image_size))

    if guarded(results, "model", build, device) is None:
        return results
    model, image_size = holder["model"], holder["image_size"]
    guarded(results, "il_step", lambda: bench_il_step(model, spec, image_size, device, steps, ceiling), device)
    guarded(results, "rollout", lambda: bench_rollout(model, spec, image_size, device), device)
    guarded(results, "ppo", lambda: bench_ppo(model, spec, image_size, device), device)
    return results


def run_children(args, sizes: list[str]) -> dict:
    """Each size in its own process (fresh CUDA context, memory released), each under a timeout."""
    merged: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            cmd = [sys.executable, __file__, "--size", size, "--steps", str(args.steps), "--device", args.device,
                   "--out", os.path.join(tmp, size)]
            if args.ceiling_n:
                cmd += ["--ceiling-n", str(args.ceiling_n)]
            started = time.perf_counter()
            try:
                proc = subprocess.run(cmd, timeout=args.size_timeout)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            part = Path(tmp) / size / "gpu_bench.json"
            merged[size] = json.loads(part.read_text())[size] if part.is_file() else {}
            if code != 0:
                merged[size]["process_error"] = f"exit {code} after {time.perf_counter() - started:.0f} s"
    return merged


def summary_rows(results: dict) -> list[tuple[str, str, str]]:
    """(size, figure, value) lines of the final table."""
    rows = []
    for size, r in results.items():
        c = r.get("ceiling", {})
        rows.append((size, "device / ceiling", f"{c.get('device', '?')} {c.get('tflops', c.get('error', '?'))} TFLOP/s"))
        il = r.get("il_step", {})
        if "error" in il or not il:
            rows.append((size, "IL step", str(il.get("error", "not run"))))
        else:
            rows.append((size, "IL step", f"b{il['batch']}{' +ckpt' if il['grad_checkpointing'] else ''}: "
                         f"{il['samples_per_s']} samples/s, {il['step_ms']} ms, MFU {il.get('mfu_vs_ceiling', '?')}, "
                         f"peak {il['peak_mem_gib']} GiB"))
        ro = r.get("rollout", {})
        if "error" in ro or not ro:
            rows.append((size, "act", str(ro.get("error", "not run"))))
        else:
            speed = {k: v for k, v in ro.items() if k.startswith("speedup_vs")}
            rows.append((size, "act", f"b1 {ro['act_b1_ms']} ms (target < 30); dec/s {ro['act_decisions_per_s']}"))
            rows.append((size, "generate", f"2 tok {ro['generate2_decisions_per_s']}; "
                         f"{UPSTREAM_ANSWER_TOKENS} tok {ro['generate_upstream_decisions_per_s']}; {speed}"))
        ppo = r.get("ppo", {})
        rows.append((size, "PPO update", str(ppo.get("error")) if "error" in ppo else
                     f"b{ppo.get('batch')}: {ppo.get('compute_samples_per_s')} samples/s on device, "
                     f"{ppo.get('end_to_end_samples_per_s')} end to end"))
        if "process_error" in r:
            rows.append((size, "process", r["process_error"]))
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="all", choices=[*SIZES, "all"])
    parser.add_argument("--steps", type=int, default=5, help="timed IL steps (after warm-up)")
    parser.add_argument("--out", default="work_dirs/gpu_bench", help="folder for gpu_bench.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--ceiling-n", type=int, default=None, help="matmul size of the ceiling (default per size)")
    parser.add_argument("--size-timeout", type=float, default=240.0, help="seconds per size with --size all")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from minddrive.errors import UserError
    from minddrive.utils.io import write_json

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_bench: --device cuda but no CUDA device is visible")
    if args.size == "all":
        sizes = ["05b", "3b"] if args.device == "cuda" else ["tiny"]
        results = run_children(args, sizes)
    else:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), int(os.environ.get("OMP_NUM_THREADS", "64")))))
        try:
            results = {args.size: run_size(SIZES[args.size], torch.device(args.device), args.steps, args.ceiling_n)}
        except UserError as exc:
            print(f"gpu_bench: error: {exc}", file=sys.stderr)
            return 2
    write_json(Path(args.out) / "gpu_bench.json", results)
    print(f"\n{'size':<5} {'figure':<17} value")
    for size, figure, value in summary_rows(results):
        print(f"{size:<5} {figure:<17} {value}")
    print(f"\nwrote {Path(args.out) / 'gpu_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
