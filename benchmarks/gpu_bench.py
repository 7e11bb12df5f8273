"""One-GPU benchmark of MindDrive at real shapes with random weights (issue #10).

Every figure is reported next to the baseline or ceiling it is judged against, measured in the same run:

0. ceiling   bf16 matmul throughput (8192^3, CUDA events, warm-up, median) and the device name;
1. il_step   stage-3 imitation step (6 cameras, EVA-02-L-shaped ViT, Qwen2 LLM, scene tokens + a QA
             conversation of ``text_len`` tokens): samples/s, peak memory, and MFU = FLOPs executed per
             step (``FlopCounterMode`` over one step) / step time / measured ceiling. Batch 4 first, then
             the same with gradient checkpointing, then 2, then 1, until one fits;
2. rollout   ``policy.act`` latency at batch 1 (median of ~20 after warm-up) and decisions/s at larger
             batches, bf16 and through the leaderboard agent's runtime (compiled, graphed, merged adapters),
             against token-by-token generation (``MindDrive.decide_by_generation``); ``fast_act`` is the
             batch-1 path step by step and decision-only scoring against generation;
3. ppo       samples/s of ``minddrive.rl.ppo.ppo_update`` at batch 32 on synthetic rollout steps, both
             end to end (numpy observations through ``policy.preprocess``) and with the batch already on
             the device (model compute only), and over 3 epochs with and without the scene cache.

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
import time
import traceback
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere (the device copies the repo, no install)
    sys.path.insert(0, str(REPO_ROOT))

from minddrive.models import acceleration as acc  # noqa: E402  (the speed-ups the entry points apply)

CONFIG_DIR = REPO_ROOT / "adzoo" / "minddrive" / "configs" / "_base_" / "models"

# Public architecture facts of the two LLMs (Hugging Face config.json of Qwen2-0.5B and Qwen2.5-3B); random
# weights are built from them because no checkpoint can be downloaded on the device machines.
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)
QWEN25_3B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                 num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                 tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)
# Used only when the size's own model config file does not exist yet (docs/upstream.md#model shapes).
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
    # (batch, gradient checkpointing) tried in order until one fits; the JSON records which one ran.
    il_ladder: tuple[tuple[int, bool], ...] = ((4, False), (4, True), (2, False), (2, True), (1, True))
    # Most important figure first. "components" and "rollout" (run 2/3's act breakdown and end-to-end act at
    # batch 8-64) are left out of the real sizes' default to fit the compiled IL step; --parts runs them.
    # PPO before the graphed IL step: CUDA-graph pools are freed after it, but measured last is safest.
    parts: tuple[str, ...] = ("fast_act", "il_step", "il_step_compiled_llm", "ppo", "il_step_compiled_all_graphs")
    backbone: dict | None = None             # replaces the config's backbone (tiny: a small EVA02ViT)
    act_batches: tuple[int, ...] = (8, 32, 64)
    gen_batches: tuple[int, ...] = (1, 32)
    collector_worlds: int = 32               # simulators stepped by one batched policy in the collector part
    collector_ticks: int = 50
    ppo_batch: int = 32
    ppo_minibatches: int = 3
    ppo_config: str = "minddrive_rl_ppo_train.py"  # its ppo.compile and ppo.micro_batch_size
    latency_runs: int = 20
    ceiling_n: int = 8192
    # The IL parts store the frozen LLM decoder weights as the stage configs' train_cfg.frozen_llm_dtype says.
    frozen_llm_dtype: str = "bf16"


SIZES = {
    # The tiny size runs a 2-block EVA02ViT (one windowed, one global block) so the CPU smoke run covers
    # the ViT's FLOP count and the analytic estimate at real code paths.
    "tiny": SizeSpec("tiny", "minddrive_tiny.py", None, text_len=96, il_ladder=((2, False), (1, True)),
                     parts=("fast_act", "components", "rollout", "il_step", "il_step_compiled", "il_step_compiled_llm",
                            "ppo", "collector"),
                     act_batches=(4,), gen_batches=(1, 4), ppo_batch=4, ppo_minibatches=2, latency_runs=3,
                     collector_worlds=2, collector_ticks=10,
                     ceiling_n=512, backbone=dict(type="EVA02ViT", img_size=(128, 224), patch_size=16, embed_dim=32,
                                                  depth=2, num_heads=2, window_size=4, global_every=2)),
    "05b": SizeSpec("05b", "minddrive_qwen2_05b.py", QWEN2_05B, text_len=320),
    # The upstream 3B batch is 4 per GPU; 2 where 4 does not fit without checkpointing.
    "3b": SizeSpec("3b", "minddrive_qwen25_3b.py", QWEN25_3B, text_len=320, act_batches=(8, 32),
                   gen_batches=(1, 32), il_ladder=((4, False), (2, False), (4, True), (2, True), (1, True)),
                   parts=("il_step", "fast_act"), ppo_config="minddrive_rl_ppo_train_3B.py"),
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
    if spec.backbone is not None:
        model["vision"]["backbone"] = dict(spec.backbone)
    if fallback and spec.llm_shape is not None:
        model["vision"]["backbone"] = dict(EVA02_L)
        model["query_decoder"] = dict(REAL_QUERY_DECODER)
        model["scene_tokens"] = dict(num_object_tokens=600, num_lane_tokens=300)
        image_size = (640, 640)
    if model["vision"]["backbone"].get("type") == "EVA02ViT":
        model["vision"]["backbone"]["grad_checkpoint"] = False
    return model, image_size, source


class BuildOnDevice(torch.overrides.TorchFunctionMode):
    """Create every tensor of a model's construction directly on ``device`` (no CPU init, no copy).

    Like ``with torch.device(device)``, except that a factory call given a CPU ``torch.Generator`` (the
    model's seeded draws, e.g. the added token rows) runs on the CPU and is moved, where the plain device
    context would fail on the generator/device mismatch. Everything else draws from the device's default
    generator, which ``torch.manual_seed`` in the model's constructor seeds: the build stays deterministic.
    """

    def __init__(self, device: torch.device):
        super().__init__()
        from torch.utils._device import _device_constructors

        self.device = torch.device(device)
        self.constructors = _device_constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.constructors and kwargs.get("device") is None:
            generator = kwargs.get("generator")
            if generator is not None and generator.device.type != self.device.type:
                return func(*args, **kwargs).to(self.device)
            kwargs["device"] = self.device
        return func(*args, **kwargs)


def build_model(spec: SizeSpec, device: torch.device):
    """The model with random weights on ``device``; built there directly (a 3B build on the CPU takes minutes),
    falling back to a CPU build + copy if construction on the device fails."""
    from minddrive.registry import MODELS, build

    cfg, image_size, source = model_config(spec)
    started = time.perf_counter()
    built_on, fallback = device.type, None
    try:
        with BuildOnDevice(device):
            model = build(copy.deepcopy(cfg), MODELS, where="model")
    except Exception as exc:  # robustness on a device run that cannot be repeated: the slow path still works
        fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        print(f"[build] on {device.type} failed ({fallback}); building on the CPU", file=sys.stderr)
        free_memory(device)
        model, built_on = build(copy.deepcopy(cfg), MODELS, where="model"), "cpu"
    model.to(device)
    info = dict(config=source, built_on=built_on, build_s=round(time.perf_counter() - started, 1),
                params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                trainable_m=round(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 2))
    if fallback:
        info["device_build_error"] = fallback
    return model, image_size, info


@contextlib.contextmanager
def frozen_llm_stored_as(model, dtype_name: str, device: torch.device):
    """The IL parts' frozen LLM weights as the trainer keeps them (``train_cfg.frozen_llm_dtype``, on CUDA:
    ``acceleration.store_frozen_llm_linears``); the float32 originals wait on the host and come back after, for
    the parts that follow (the rollout parts run their own inference dtype)."""
    if dtype_name != "bf16" or device.type != "cuda":
        yield
        return
    params = [p for linear in acc.frozen_decoder_linears(model.llm.peft) for p in (linear.weight, linear.bias)
              if p is not None]
    originals = [p.data.to("cpu") for p in params]
    acc.store_frozen_llm_linears(model, torch.bfloat16)
    try:
        yield
    finally:
        for param, original in zip(params, originals):
            param.data = original.to(device)
        acc.store_frozen_llm_linears(model, torch.float32)  # a no-op cast; drops graphs captured over bf16 weights


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
    from minddrive.constants import NUM_ROUTE_POINTS
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
            traceback.print_exc()  # whole stack: the device log is the only evidence of a one-shot run
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
def matmul_ceiling(device: torch.device, n: int, warmup: int = 3, window_s: float = 1.5, tail: int = 50) -> dict:
    """The matmul rate of this device (bf16 on CUDA, fp32 on CPU): n^3 products, each timed alone by CUDA
    events, for ``window_s`` after ``warmup`` untimed ones. ``tflops`` (the ceiling MFU is measured against)
    is the fastest product: the GPU at its boost clock. ``sustained_tflops`` is the median of the last
    ``tail``: under continuous matmuls an H100 lowers its clocks (run 7: the fastest product 788-790 TFLOP/s
    on a fresh GPU, 650-690 after a second of load; run 6 took the median of 20 products after three warm-ups,
    709-789 across processes). The fastest is the conservative ceiling: a lower one flatters MFU."""
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    synchronize(device)
    seconds = []
    started = time.perf_counter()
    while len(seconds) < 3 or (cuda and time.perf_counter() - started < window_s):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - t0)
    best, sustained = min(seconds), statistics.median(seconds[-tail:])
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    return dict(device=name, dtype=str(dtype).replace("torch.", ""), n=n, best_ms=round(best * 1e3, 3),
                flops_per_s=2 * n**3 / best, tflops=round(2 * n**3 / best / 1e12, 4),
                sustained_tflops=round(2 * n**3 / sustained / 1e12, 4), products=len(seconds),
                method=f"fastest of {len(seconds)} single products over {window_s if cuda else 0} s "
                       f"after {warmup} warm-ups; sustained: median of the last {min(tail, len(seconds))}")


# ----------------------------------------------------------------------------------------------------------
# 1. Imitation-learning step
# ----------------------------------------------------------------------------------------------------------
def make_optimizer(model):
    """The stage-3 optimiser (docs/upstream.md#imitation-learning): AdamW 8e-5, wd 1e-5, layer-wise decay 0.9
    over the ViT; fused on CUDA as the 0.5B stage-3 config sets it."""
    from minddrive.registry import OPTIMIZERS, build

    depth = len(getattr(model.backbone, "blocks", [])) or 1
    cfg = dict(type="AdamW", lr=8e-5, weight_decay=1e-5, fused=True if model.img_mean.is_cuda else None,
               paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=depth, backbone_prefix="backbone"))
    return build(cfg, OPTIMIZERS, where="optimizer", model=model)


def il_train_step(model, optimizer, batch: dict, device: torch.device, grad_clip: float = 35.0,
                  mark: Callable[[str], None] = lambda phase: None) -> float:
    """One stage-3 step exactly as the trainer does it: autocast forward, backward, clip, AdamW step.
    ``mark(phase)`` is called as each phase starts (``scene_profile.PhaseMarkers`` times them)."""
    from minddrive.train.trainer import total_loss

    if device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA-graphed regions (reduce-overhead)
    mark("forward")
    with autocast(device):
        loss = total_loss(model(batch))
    mark("backward")
    loss.backward()
    mark("clip grad norm")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    mark("optimizer step")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    mark("end")
    return float(loss.detach())


def attention_flops(q_shape, k_shape, v_shape, backward: bool = False) -> int:
    """Matmul FLOPs of softmax attention (B, Hq, Sq, D) x (B, Hkv, Sk, D); key/value heads are broadcast to the
    query heads (grouped-query attention), which the flop counter of older torch versions rejects. Forward:
    QK^T and PV; backward: the recomputed scores plus four gradient matmuls (2.5x the forward)."""
    b, heads, s_q, d = q_shape[-4:]
    s_k, d_v = k_shape[-2], v_shape[-1]
    forward = 2 * b * heads * s_q * s_k * (d + d_v)
    return forward * 5 // 2 if backward else forward


def _sdpa_formulas() -> dict:
    """GQA-aware formulas for every SDPA kernel this torch has, the CPU ones included (unregistered upstream,
    so they would count as zero)."""
    aten = torch.ops.aten

    def fwd(q, k, v, *args, out_shape=None, **kwargs):
        return attention_flops(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs):
        return attention_flops(q, k, v, backward=True)

    formulas = {}
    for name in ("_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu"):
        if hasattr(aten, name):
            formulas[getattr(aten, name)] = fwd
        if hasattr(aten, name + "_backward"):
            formulas[getattr(aten, name + "_backward")] = bwd
    return formulas


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs executed by ``fn`` (matmuls, convolutions, attention), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_sdpa_formulas())
    with counter:
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def model_flop_mode(model):
    """For a FLOP-counting pass: the LLM's attention as explicit matmuls (counted exactly; the timed steps keep
    SDPA; the attention modules and the mask builder read the config at every forward), and the ViT's MLP at
    its real width (the zero units it is padded with on CUDA are executed work, not model FLOPs)."""
    from minddrive.models.vision import _SwiGLU

    config = model.llm.peft.base_model.model.config
    previous = config._attn_implementation, _SwiGLU.pad_hidden
    config._attn_implementation, _SwiGLU.pad_hidden = "eager", False
    try:
        yield
    finally:
        config._attn_implementation, _SwiGLU.pad_hidden = previous


def il_sequence_tokens(model, text_len: int) -> int:
    """LLM positions of one IL sample: the text with its one ``<image>`` token replaced by the scene tokens."""
    return text_len - 1 + model.num_object_tokens + model.num_lane_tokens + 1


def analytic_il_flops(model, batch_size: int, image_size: tuple[int, int], text_len: int, labelled: int) -> dict:
    """Model FLOPs of one IL step from the architecture (the 2·params·tokens rule plus attention scores),
    as a cross-check of the counted figure. Backward costs 2x the forward where weights train (input and
    weight gradients) and 1x where they are frozen (input gradients only: the base LLM under LoRA).
    The query decoder, position embedding and heads are left out (a few percent at real shapes)."""
    out: dict[str, Any] = {}
    backbone = model.backbone
    if type(backbone).__name__ == "EVA02ViT":
        ps = backbone.patch_size
        gh, gw = image_size[0] // ps, image_size[1] // ps
        tokens = gh * gw
        dim = backbone.patch_embed.out_channels
        fwd = 2 * tokens * backbone.patch_embed.weight.numel()
        for block in backbone.blocks:
            linear = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
            if block.window:  # attention over the grid padded to whole windows; every Linear over real tokens
                w = block.window
                scores = -(-gh // w) * -(-gw // w) * (w * w) ** 2
            else:
                scores = tokens * tokens
            fwd += 2 * tokens * linear
            fwd += 4 * scores * dim  # QK^T and PV over all heads
        images = batch_size * 6
        trains = any(p.requires_grad for p in backbone.parameters())
        out["vit_fwd"] = fwd * images
        out["vit"] = out["vit_fwd"] * (3 if trains else 2)
    causal = model.llm.peft.base_model.model
    cfg = causal.config
    seq = il_sequence_tokens(model, text_len)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    base = sum(p.numel() for n, p in causal.model.layers.named_parameters() if p.ndim == 2 and "lora_" not in n)
    lora = sum(p.numel() for n, p in causal.model.layers.named_parameters()
               if "lora_" in n and ".action_expert." in n)
    attention = 4 * cfg.num_hidden_layers * seq * seq * cfg.num_attention_heads * head_dim  # full (not causal-halved)
    lm_head = 2 * labelled * causal.lm_head.weight.numel()  # only labelled positions are projected
    llm_fwd = batch_size * (2 * seq * (base + lora) + attention) + lm_head
    out["llm_fwd"] = llm_fwd
    # frozen weights: forward + input gradients; LoRA: + weight gradients (2·r·(in+out) per token, small).
    out["llm"] = 2 * llm_fwd + batch_size * 2 * seq * lora
    out["total"] = out.get("vit", 0) + out["llm"]
    out["note"] = "model FLOPs (no recompute); ViT 3x fwd (trained), base LLM 2x fwd (frozen, LoRA on top)"
    return out


def bench_il_step_compiled(model, spec: SizeSpec, image_size, device, steps: int, ceiling_tflops: float | None,
                           eager: dict | None, llm_layers: bool = False, llm_mode: str | None = None,
                           mode: str | None = None) -> dict:
    """The IL step with the ViT blocks compiled (``acceleration.compile_vit_blocks``: regional compilation), and
    with ``llm_layers`` the LLM decoder layers too (``acceleration.compile_regions``), at the eager run's (batch,
    checkpointing) so the runs are comparable; the compile (first step) is timed apart and excluded from
    throughput; MFU uses the eager run's counted FLOPs (compilation does not change the model's FLOPs).
    Everything is made eager again afterwards, whatever happens."""
    backbone = model.backbone
    if not acc.has_vit_blocks(backbone):
        return dict(skipped=f"backbone {type(backbone).__name__} has no ViT blocks to compile")
    ladder = spec.il_ladder
    if eager and "batch" in eager:
        ladder = ((eager["batch"], eager["grad_checkpointing"]),)
    backend = compile_backend(device)
    # From an empty compile cache, as a training process starts: the inference variants earlier parts compiled
    # for the same layer code made every compiled call check their guards first (~20 ms more per IL step on an
    # H100 host, where the step's host time already bounds parts of it).
    torch.compiler.reset()
    if llm_layers:
        acc.compile_regions(model, backend=backend, mode=mode, llm_mode=llm_mode)
    else:
        acc.compile_vit_blocks(backbone, backend=backend)
    try:
        out = bench_il_step(model, dataclass_replace(spec, il_ladder=ladder), image_size, device, steps,
                            ceiling_tflops, count=False)
    finally:
        acc.decompile_regions(model)
        if "reduce-overhead" in (mode, llm_mode):
            torch.compiler.reset()  # frees the CUDA-graph memory pools (~40 GiB here), or later parts run out
            free_memory(device)
    out["compiled"] = (f"ViT blocks{' + LLM decoder layers' if llm_layers else ''} (regional torch.compile, backend "
                       f"{backend}{f', mode {mode}' if mode else ''}{f', LLM layers mode {llm_mode}' if llm_mode else ''})")
    flops = (eager or {}).get("flop_per_step", out["analytic_flop_per_step"])
    step_s = out["step_ms"] / 1e3
    out.update(flop_per_step_from_eager=flops, tflop_per_step=round(flops / 1e12, 4),
               achieved_tflops=round(flops / step_s / 1e12, 2))
    if ceiling_tflops:
        out["mfu_vs_ceiling"] = round(flops / step_s / 1e12 / ceiling_tflops, 4)
    if eager and "samples_per_s" in eager:
        out["speedup_vs_eager"] = round(out["samples_per_s"] / eager["samples_per_s"], 3)
    return out


def bench_il_step(model, spec: SizeSpec, image_size, device, steps: int, ceiling_tflops: float | None,
                  warmup: int = 2, count: bool = True) -> dict:
    """Throughput at the first (batch, checkpointing) of ``spec.il_ladder`` that fits, then a separate FLOP
    count at batch 1 (eager LLM attention, same checkpointing; FLOPs are linear in batch at fixed length),
    unless ``count`` is False. ``first_step_s`` (the step that allocates the optimiser state, and compiles
    where anything is compiled) is reported apart from the timed steps. The frozen LLM weights are stored
    as ``spec.frozen_llm_dtype`` says, as the trainer stores them."""
    with frozen_llm_stored_as(model, spec.frozen_llm_dtype, device):
        out = _bench_il_step(model, spec, image_size, device, steps, ceiling_tflops, warmup, count)
    out["frozen_llm_dtype"] = spec.frozen_llm_dtype if device.type == "cuda" else "fp32"
    return out


def _bench_il_step(model, spec: SizeSpec, image_size, device, steps: int, ceiling_tflops: float | None,
                   warmup: int, count: bool) -> dict:
    model.train()
    optimizer = make_optimizer(model)
    attempts = []
    for batch_size, checkpointing in spec.il_ladder:
        set_gradient_checkpointing(model, checkpointing)
        try:
            batch = training_batch(model, batch_size, image_size, spec.text_len, device)
            reset_peak_memory(device)
            synchronize(device)
            first_started = time.perf_counter()
            loss = il_train_step(model, optimizer, batch, device)  # also allocates AdamW state
            synchronize(device)
            first_step_s = time.perf_counter() - first_started
            times = time_calls(lambda: il_train_step(model, optimizer, batch, device), device,
                               warmup=max(0, warmup - 1), runs=steps)
        except Exception as exc:
            if not is_out_of_memory(exc):
                set_gradient_checkpointing(model, False)
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
        peak = peak_memory_gib(device)
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        batch = None
        free_memory(device)
        out = dict(batch=batch_size, grad_checkpointing=checkpointing,
                   setting=f"batch {batch_size}, gradient checkpointing {'on' if checkpointing else 'off'}, "
                           f"bf16 autocast, {len(attempts)} OOM attempt(s) before",
                   loss_first=round(loss, 4), first_step_s=round(first_step_s, 2), warmup_steps=warmup,
                   timed_steps=steps,
                   step_ms=round(step_s * 1e3, 1), samples_per_s=round(batch_size / step_s, 2),
                   peak_mem_gib=peak, seq_len_text=spec.text_len, seq_len_llm=il_sequence_tokens(model, spec.text_len),
                   scene_tokens=model.num_object_tokens + model.num_lane_tokens + 1, attempts=attempts)
        analytic = analytic_il_flops(model, batch_size, image_size, spec.text_len, labelled)
        out["analytic_flop_per_step"] = analytic["total"]
        out["analytic_parts"] = {k: v for k, v in analytic.items() if k != "total"}
        if not count:
            set_gradient_checkpointing(model, False)
            del optimizer
            return out
        try:
            one = training_batch(model, 1, image_size, spec.text_len, device)
            with model_flop_mode(model):
                flops_one = count_flops(lambda: il_train_step(model, optimizer, one, device))
            out["flop_per_step"] = flops_one * batch_size
            out["flop_count"] = ("FlopCounterMode over one step at batch 1 x batch (eager LLM attention, unpadded "
                                 f"ViT MLP, checkpointing {'on: includes recompute' if checkpointing else 'off'})")
            out["counted_over_analytic"] = round(out["flop_per_step"] / max(analytic["total"], 1), 3)
        except Exception as exc:  # the timed figure stands; MFU then rests on the analytic estimate
            out["flop_count_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            print(f"[il_step] FLOP count failed: {out['flop_count_error']}", file=sys.stderr)
        finally:
            one = None
            free_memory(device)
        flops = out.get("flop_per_step", analytic["total"])
        out.update(tflop_per_step=round(flops / 1e12, 4), achieved_tflops=round(flops / step_s / 1e12, 2))
        if ceiling_tflops:
            if "flop_per_step" in out:
                out["mfu_vs_ceiling"] = round(out["flop_per_step"] / step_s / 1e12 / ceiling_tflops, 4)
            out["mfu_analytic_vs_ceiling"] = round(analytic["total"] / step_s / 1e12 / ceiling_tflops, 4)
        set_gradient_checkpointing(model, False)
        del optimizer
        return out
    set_gradient_checkpointing(model, False)
    raise RuntimeError(f"out of memory in every IL setting tried: {list(spec.il_ladder)}")


# ----------------------------------------------------------------------------------------------------------
# 2. Rollout inference
# ----------------------------------------------------------------------------------------------------------
# Rollout/eval run an inference copy of the model cast to this dtype on GPU (policy option ``dtype``);
# training figures keep float32 master weights + bf16 autocast.
ROLLOUT_DTYPE = "bfloat16"


def compile_backend(device: torch.device) -> str:
    """Inductor on the GPU; on the CPU smoke runs the same Dynamo/AOTAutograd path without a C++ build."""
    return "inductor" if device.type == "cuda" else "aot_eager"


def inference_policy(model, device: torch.device):
    """A :class:`MindDrivePolicy` over a bf16 copy of ``model`` (float32 on CPU, where bf16 is slow); the
    original stays float32 for the training figures measured after."""
    from minddrive.models import MindDrivePolicy

    dtype = ROLLOUT_DTYPE if device.type == "cuda" else None
    copy_ = copy.deepcopy(model) if dtype else model
    return MindDrivePolicy(copy_, device, dtype=dtype).eval(), dtype or "float32"


def time_device(fn: Callable[[], Any], device: torch.device, warmup: int, runs: int) -> float:
    """Median milliseconds of ``fn`` by CUDA events (device time between enqueue points; perf_counter on CPU)."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        return statistics.median(time_calls(fn, device, 0, runs)) * 1e3
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench_components(model, spec: SizeSpec, image_size, device) -> dict:
    """Where ``act``'s time goes, per batch size: scene encoding (vision + PETR + query decoder + projector),
    the decision, value and action LLM passes, and whole ``act``; then the decision part alone with the
    scene precomputed (as when a rollout encodes a scene once): single-pass scoring vs greedy generation of
    2 tokens and of the ~12-token upstream answer, both from the same scene tokens."""
    policy, dtype = inference_policy(model, device)
    net = policy.model
    out: dict[str, Any] = dict(dtype=dtype, timing="CUDA events, median" if device.type == "cuda" else "wall, median")
    runs = max(3, spec.latency_runs // 4)
    for b in spec.gen_batches:
        row: dict[str, Any] = {}
        batch = runtime_batch(b, image_size, device, seed=200 + b)
        try:
            with torch.inference_mode(), policy._autocast():
                scene, _ = net.encode_scene(batch)
                decision = net.decision_log_probs(batch, scene).argmax(-1)
                command = batch["command"].to(device).long()
                parts = {"scene_ms": lambda: net.encode_scene(batch),
                         "decision_pass_ms": lambda: net.decision_log_probs(batch, scene),
                         "value_pass_ms": lambda: net.value(batch, scene),
                         "action_pass_ms": lambda: net.plan(batch, decision, command, scene)}
                for name, fn in parts.items():
                    row[name] = round(time_device(fn, device, warmup=1, runs=runs), 2)
            row["act_ms"] = round(time_device(lambda: policy.act(batch, sample=False), device, 1, runs), 2)
            row["llm_share_of_act"] = round(sum(row[k] for k in ("decision_pass_ms", "value_pass_ms", "action_pass_ms"))
                                            / row["act_ms"], 3)
            row["decision_only_per_s"] = round(b / (row["decision_pass_ms"] / 1e3), 1)
            with policy._autocast():
                row.update(generation_rates(net, batch, scene, device, "_from_scene"))
            row["decision_only_speedup_vs_generate2"] = round(row["decision_only_per_s"] / row["generate2_from_scene_per_s"], 2)
            row["decision_only_speedup_vs_upstream_generate"] = round(
                row["decision_only_per_s"] / row["generate_upstream_from_scene_per_s"], 2)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            row["oom"] = True
        finally:
            batch = scene = None
            free_memory(device)
        out[f"b{b}"] = row
    net.use_adapter("action_expert")
    del policy, net
    free_memory(device)
    return out


def bench_fast_act(model, spec: SizeSpec, image_size, device) -> dict:
    """Issue #10's inference paths against the old one, on ONE bf16 copy in the same run:

    * ``act`` at batch 1: old (decision and value as two LLM passes, eager) -> decision + value in one pass
      (``fuse_decision_value``) -> plus CUDA graphs of the LLM passes (``acceleration.DecoderGraphs``) -> plus
      the ViT blocks compiled -> plus the LLM and query-decoder layers compiled (``acceleration.compile_regions``)
      -> plus the scene encoder replayed from a CUDA graph (``acceleration.SceneGraphs``); captures and compiles (first call per
      shape) are timed apart and excluded;
    * the new path's parts at batch 1: scene encode, fused decision + value pass, action pass;
    * decision-only throughput at the largest ``gen_batches`` (scene precomputed, eager and graphed) against
      greedy generation of 2 tokens and of the ~12-token upstream answer from the same scene tokens.
    """
    policy, dtype = inference_policy(model, device)
    net = policy.model
    out: dict[str, Any] = dict(dtype=dtype, act_b1_target_ms=30.0, timing="wall, median (device synchronised)")
    batch = runtime_batch(1, image_size, device, seed=1)
    runs = spec.latency_runs

    def act_ms(warmup=2):
        times = time_calls(lambda: policy.act(batch, sample=False), device, warmup=warmup, runs=runs)
        return round(statistics.median(times) * 1e3, 2)

    def first_call_then_time(first_key: str, ms_key: str) -> None:
        """The first act after a change (captures / compiles) timed apart, then the steady-state latency."""
        started = time.perf_counter()
        policy.act(batch, sample=False)
        synchronize(device)
        out[first_key] = round(time.perf_counter() - started, 2)
        out[ms_key] = act_ms(warmup=1)

    def b1_parts() -> dict:
        """Device time of the scene encode, the fused decision + value pass and the action pass (current path)."""
        with torch.inference_mode(), policy._autocast():
            scene, _ = net.encode_scene(batch)
            decision = net.decision_log_probs(batch, scene).argmax(-1)
            parts = {"scene_ms": lambda: net.encode_scene(batch),
                     "decision_value_pass_ms": lambda: net.decision_and_value(batch, scene),
                     "action_pass_ms": lambda: net.plan(batch, decision, batch["command"].long(), scene)}
            return {k: round(time_device(fn, device, warmup=1, runs=max(3, runs // 2)), 2) for k, fn in parts.items()}

    backend = compile_backend(device)
    try:
        net.backbone.patch_matmul = False  # the session-4 path first (cuDNN's patch convolution)
        policy.fuse_decision_value = False
        acc.use_cuda_graphs(net, False)
        out["act_b1_old_ms"] = act_ms()
        policy.fuse_decision_value = True
        out["act_b1_fused_ms"] = act_ms()
        acc.use_cuda_graphs(net, scene=False)  # the fused and the action pass at batch 1
        first_call_then_time("graph_capture_s", "act_b1_fused_graphs_ms")
        out["graphs_captured"] = len(acc.fast_paths(net).decoder_graphs.graphs)
        out["graph_failures"] = dict((str(k[:2]), v) for k, v in acc.fast_paths(net).decoder_graphs.failures.items())
        try:  # then the scene encoder too: the ViT blocks compiled (inference variants)
            acc.compile_vit_blocks(net.backbone, backend=backend)
            first_call_then_time("vit_compile_s", "act_b1_fused_graphs_vit_compiled_ms")
            # then the LLM and query-decoder layers too, the LLM graphs captured again over the compiled code
            acc.compile_regions(net, backend=backend)
            acc.fast_paths(net).drop_captured_graphs()
            first_call_then_time("regions_compile_s", "act_b1_fused_graphs_regions_compiled_ms")
            acc.use_cuda_graphs(net)  # and the scene encoder replayed from a CUDA graph
            first_call_then_time("scene_graph_capture_s", "act_b1_all_graphs_regions_compiled_ms")
            out["scene_graph_failures"] = dict(
                (str(i), v) for i, v in enumerate(acc.fast_paths(net).scene_graphs.failures.values()))
            out["b1_parts_graphs"] = b1_parts()
            # Session 5: patches embedded by one matmul instead of cuDNN's strided conv, then the LoRA adapters
            # merged into copies of the weights, then (opt-in) the ViT's matmuls in float8; graphs recaptured.
            steps = (("patch_matmul", lambda: setattr(net.backbone, "patch_matmul", None)),
                     ("merged", lambda: acc.merge_adapters(net)),
                     ("vit_float8", lambda: acc.use_vit_float8(net)))
            reference = policy.act(batch, sample=False)
            for name, change in steps:
                change()
                acc.fast_paths(net).drop_captured_graphs()
                first_call_then_time(f"{name}_first_call_s", f"act_b1_{name}_ms")
                if name == "merged":
                    out["b1_parts_merged"] = b1_parts()
            out["float8_deviation_b1"] = act_deviation(reference, policy.act(batch, sample=False))
            out["b1_parts_float8"] = b1_parts()
            # Where float8 acts: the ViT's features (per token). The scene tokens barely depend on the images
            # with random weights (the query decoder's outputs are mostly its learned queries), so they say little.
            images = ((batch["img"].float() - net.img_mean) / net.img_std).flatten(0, 1)
            with torch.inference_mode(), policy._autocast():
                approx_scene, approx_feats = type(net).encode_scene(net, batch)[0], net.backbone(images)
                acc.use_vit_float8(net, False)
                exact_scene, exact_feats = type(net).encode_scene(net, batch)[0], net.backbone(images)
            cosine = lambda a, b, dim: torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=dim)  # noqa: E731
            token_cos = cosine(approx_feats, exact_feats, 1)  # (B*N, h, w): per feature-map position
            out["float8_deviation_b1"].update(
                scene_token_cosine_min=round(float(cosine(approx_scene, exact_scene, -1).min()), 4),
                vit_feature_cosine_mean=round(float(token_cos.mean()), 4),
                vit_feature_cosine_min=round(float(token_cos.min()), 4))
        except Exception as exc:  # the figures above stand
            out["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            traceback.print_exc()
        measured = ("act_b1_fused_ms", "act_b1_fused_graphs_ms", "act_b1_fused_graphs_vit_compiled_ms",
                    "act_b1_fused_graphs_regions_compiled_ms", "act_b1_all_graphs_regions_compiled_ms",
                    "act_b1_patch_matmul_ms", "act_b1_merged_ms")
        best = min(out[k] for k in measured if k in out)  # exact paths (bf16); float8 reported apart
        out["act_b1_best_ms"] = best
        out["act_b1_meets_target"] = best < 30.0
        if "act_b1_vit_float8_ms" in out:
            out["act_b1_float8_meets_target"] = out["act_b1_vit_float8_ms"] < 30.0
        out["act_b1_speedup_vs_old"] = round(out["act_b1_old_ms"] / best, 2)
    finally:
        acc.decompile_regions(net)
        acc.use_cuda_graphs(net, False)
        acc.merge_adapters(net, False)
        acc.use_vit_float8(net, False)
        batch = None
        free_memory(device)

    b = max(spec.gen_batches)
    row: dict[str, Any] = dict(batch=b)
    batch = runtime_batch(b, image_size, device, seed=200 + b)
    try:
        with torch.inference_mode(), policy._autocast():
            scene, _ = net.encode_scene(batch)
            variants = ((False, False, False, "decision_only_eager_per_s"),
                        (True, False, False, "decision_only_graphs_per_s"),
                        (True, True, False, "decision_only_compiled_graphs_per_s"),
                        (True, True, True, "decision_only_merged_compiled_graphs_per_s"))
            for graphs, compiled, merged, key in variants:
                if compiled:
                    acc.compile_regions(net, backend=compile_backend(device))
                acc.merge_adapters(net, merged)
                acc.use_cuda_graphs(net, False)
                if graphs:
                    acc.use_cuda_graphs(net, scene=False)
                ms = time_device(lambda: net.decision_log_probs(batch, scene), device, warmup=2, runs=max(3, runs // 2))
                row[key] = round(b / (ms / 1e3), 1)
            acc.decompile_regions(net)
            acc.merge_adapters(net, False)
            acc.use_cuda_graphs(net, False)
            row.update(generation_rates(net, batch, scene, device))  # the upstream approach: eager generation
        best = max(row[key] for *_, key in variants)
        row["speedup_vs_generate2"] = round(best / row["generate2_per_s"], 2)
        row["speedup_vs_upstream_generate"] = round(best / row["generate_upstream_per_s"], 2)
        row["speedup_target"] = 10.0
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        row["oom"] = True
    finally:
        acc.decompile_regions(net)
        batch = scene = None
        acc.use_cuda_graphs(net, False)
        free_memory(device)
    out[f"decision_only_b{b}"] = row
    net.use_adapter("action_expert")
    del policy, net
    free_memory(device)
    return out


def act_deviation(reference, approx) -> dict:
    """How far an approximate ``act`` (float8 ViT) moved from the exact one on the same batch."""
    return dict(max_abs_log_prob=round(float((approx.log_probs - reference.log_probs).abs().max()), 4),
                decision_agrees=bool(torch.equal(approx.decision, reference.decision)),
                value_abs=round(float((approx.value - reference.value).abs().max()), 4),
                path_max_abs_m=round(float((approx.path - reference.path).abs().max()), 4),
                memory_cosine=round(float(torch.nn.functional.cosine_similarity(
                    approx.memory["prev_memory"].flatten(1).float(),
                    reference.memory["prev_memory"].flatten(1).float()).min()), 4))


def generation_rates(net, batch: dict, scene, device, suffix: str = "") -> dict:
    """Decisions/s of the token-by-token baseline from precomputed scene tokens: 2 new tokens (the speed
    word) and UPSTREAM_ANSWER_TOKENS (about upstream's whole answer)."""
    b = scene.shape[0]
    rates = {}
    for tokens, name in ((2, "generate2"), (UPSTREAM_ANSWER_TOKENS, "generate_upstream")):
        ms = time_device(lambda: net.decide_by_generation(batch, tokens, scene=scene), device, 1, 3)
        rates[f"{name}{suffix}_per_s"] = round(b / (ms / 1e3), 1)
    return rates


def act_throughput(policy, batch_size: int, image_size, device, runs: int, out: dict,
                   time_first_call: bool = False) -> None:
    """Sampled ``policy.act`` decisions/s at ``batch_size`` into ``out["act_decisions_per_s"]`` ("oom" where it
    does not fit) and its peak memory; with ``time_first_call`` the first call (compiles, graph captures) is
    timed apart into ``out["first_call_s"]``."""
    key = str(batch_size)
    try:
        batch = runtime_batch(batch_size, image_size, device, seed=batch_size)
        if time_first_call:
            started = time.perf_counter()
            policy.act(batch, sample=True)
            synchronize(device)
            out["first_call_s"][key] = round(time.perf_counter() - started, 2)
        reset_peak_memory(device)
        t = statistics.median(time_calls(lambda: policy.act(batch, sample=True), device, warmup=1, runs=runs))
        out["act_decisions_per_s"][key] = round(batch_size / t, 1)
        out[f"act_b{batch_size}_peak_mem_gib"] = peak_memory_gib(device)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        out["act_decisions_per_s"][key] = "oom"
    finally:
        batch = None
        free_memory(device)


def bench_rollout(model, spec: SizeSpec, image_size, device) -> dict:
    policy, dtype = inference_policy(model, device)
    model = policy.model
    out: dict[str, Any] = dict(dtype=dtype)
    batch = runtime_batch(1, image_size, device, seed=1)
    times = time_calls(lambda: policy.act(batch, sample=False), device, warmup=2, runs=spec.latency_runs)
    out["act_b1_ms"] = round(statistics.median(times) * 1e3, 2)
    out["act_b1_p90_ms"] = round(float(np.percentile(times, 90)) * 1e3, 2)
    out["act_b1_target_ms"] = 30.0
    out["act_b1_meets_target"] = out["act_b1_ms"] < 30.0
    out["act_decisions_per_s"] = {"1": round(1.0 / statistics.median(times), 1)}
    for b in spec.act_batches:
        act_throughput(policy, b, image_size, device, runs=3, out=out)

    # Baseline: greedy generation of the decision with the decision adapter (scene encoding included, as in act).
    for new_tokens, key in ((2, "generate2_decisions_per_s"), (UPSTREAM_ANSWER_TOKENS, "generate_upstream_decisions_per_s")):
        out[key] = {}
        for b in spec.gen_batches:
            batch = runtime_batch(b, image_size, device, seed=100 + b)

            def generate():
                with policy._autocast():
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
    del policy
    free_memory(device)
    out["fast"] = bench_rollout_fast(model, spec, image_size, device)
    big = str(max(spec.gen_batches))
    fast_big, up_big = out["fast"]["act_decisions_per_s"].get(big), out["generate_upstream_decisions_per_s"].get(big)
    if isinstance(fast_big, float) and isinstance(up_big, float):
        out[f"fast_speedup_vs_upstream_generate_b{big}"] = round(fast_big / up_big, 2)
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


AGENT_CONFIG = REPO_ROOT / "adzoo" / "minddrive" / "configs" / "minddrive_qwen2_05B_infer.py"


def bench_rollout_fast(model, spec: SizeSpec, image_size, device) -> dict:
    """The whole ``act`` (decision + value + action) at batch 1 and ``spec.act_batches`` through the leaderboard
    agent's runtime (``agent.policy`` of the 0.5B infer config: bf16, compiled regions, CUDA graphs, merged
    adapters; on the CPU only the merged adapters), on a copy of ``model``. The first call per batch size
    (compile, captures) is timed apart."""
    from minddrive.config import load_config
    from minddrive.models import MindDrivePolicy
    from minddrive.models.policy import policy_options

    runtime = dict(load_config(AGENT_CONFIG).agent.policy)
    if device.type != "cuda":
        runtime = dict(merge_adapters=True)
    policy = acc.accelerate_for_inference(
        MindDrivePolicy(copy.deepcopy(model), device, **policy_options(runtime)), runtime).eval()
    out: dict[str, Any] = dict(runtime=runtime, act_decisions_per_s={}, first_call_s={})
    try:
        for b in (1, *spec.act_batches):
            act_throughput(policy, b, image_size, device, runs=spec.latency_runs if b == 1 else 5, out=out,
                           time_first_call=True)
        if isinstance(out["act_decisions_per_s"]["1"], float):
            out["act_b1_ms"] = round(1e3 / out["act_decisions_per_s"]["1"], 2)
    finally:
        acc.decompile_regions(policy.model)
        del policy
        free_memory(device)
    return out


# ----------------------------------------------------------------------------------------------------------
# 3. PPO update
# ----------------------------------------------------------------------------------------------------------
class PPOPolicyAdapter(torch.nn.Module):
    """What ``minddrive.rl.ppo.ppo_update`` expects of a policy (an ``nn.Module`` with ``TrainablePolicy``'s
    ``preprocess``, ``evaluate_decisions`` and ``scene_tokens``, ``minddrive.interfaces``) around a :class:`MindDrivePolicy`, which is a plain class holding the model.

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

    def preprocess(self, obs_list, memory=None):
        if self.staged is not None:
            return {k: v[:len(obs_list)] for k, v in self.staged.items()}
        return self.policy.preprocess(obs_list)  # measured without the temporal memory, as before

    def scene_tokens(self, batch):
        return self.policy.scene_tokens(batch)

    def evaluate_decisions(self, batch, actions, temperature=1.0, scene=None):
        return self.policy.evaluate_decisions(batch, actions, temperature=temperature, scene=scene)


def rendered_cameras(image_size: tuple[int, int], seed: int = 0, ticks: int = 20) -> np.ndarray:
    """Six camera images (uint8 (6, H, W, 3)) the embedded simulator renders ``ticks`` expert ticks into a route:
    what PPO's step files hold (PNG-packed), so decoding them costs what it costs on rollout data."""
    from minddrive.sim.writer import make_env_and_expert

    env, expert = make_env_and_expert(dict(type="EmbeddedDriveEnv", render=True, image_size=tuple(image_size)))
    try:
        obs, _ = env.reset(seed=seed)
        for _ in range(ticks):
            obs, *_ = env.step(expert.act())
        return obs["images"]
    finally:
        env.close()


class SyntheticSteps(torch.utils.data.Dataset):
    """Decoupled rollout steps as ``minddrive.rl.decouple.read_step`` returns them, of the right shapes:
    the stored observation, the action, all 7 rollout-time log-probs, value, advantage and return.

    One observation shared by every step. ``packed``: its images are a simulator frame kept PNG-packed and
    decoded on every read, as ``read_step`` does; otherwise random images handed out as they are (the cost
    measured is the host conversion). ``read(i, images=False)`` leaves them out, as ``StepDataset.read`` does
    (``ppo_update`` asks so once a step's scene tokens are cached); ``image_reads`` counts reads with images.
    """

    def __init__(self, count: int, image_size: tuple[int, int], seed: int = 0, with_images: bool = True,
                 packed: bool = False):
        from minddrive.constants import EGO_STATE_DIM, NUM_SPEED_ACTIONS
        from minddrive.rl.buffer import pack_obs
        from minddrive.constants import NUM_ROUTE_POINTS
        from minddrive.sim.sensors import camera_calibration

        rng = np.random.default_rng(seed)
        h, w = image_size
        self.count = count
        self.obs = self.packed = None
        if with_images:
            images = rendered_cameras(image_size, seed) if packed else rng.integers(0, 256, (6, h, w, 3), dtype=np.uint8)
            self.obs = dict(images=images, ego_state=rng.random(EGO_STATE_DIM, dtype=np.float32), command=0,
                            target_point=np.array([20.0, 0.0], np.float32),
                            route=np.stack([np.arange(1, NUM_ROUTE_POINTS + 1) * 2.0,
                                            np.zeros(NUM_ROUTE_POINTS)], -1).astype(np.float32),
                            **camera_calibration(width=w, height=h))
            self.packed = pack_obs(self.obs) if packed else None
        logits = rng.normal(size=(count, NUM_SPEED_ACTIONS))
        self.log_probs = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
        self.actions = rng.integers(0, NUM_SPEED_ACTIONS, count)
        self.values = rng.normal(size=count).astype(np.float32)
        self.advantages = rng.normal(size=count).astype(np.float32)
        self.image_reads = 0

    def __len__(self) -> int:
        return self.count

    def observation(self, i: int, images: bool):
        from minddrive.rl.buffer import unpack_obs

        if self.obs is None:
            return i  # PPOPolicyAdapter's staged device batch stands in
        if not images:
            return {k: v for k, v in self.obs.items() if k != "images"}
        self.image_reads += 1
        return unpack_obs(self.packed) if self.packed is not None else self.obs

    def __getitem__(self, i: int) -> dict:
        return self.read(i)

    def read(self, i: int, images: bool = True) -> dict:
        return dict(obs=self.observation(i, images), memory=None, action=int(self.actions[i]),
                    log_probs=self.log_probs[i], value=float(self.values[i]), advantage=float(self.advantages[i]),
                    ret=float(self.values[i] + self.advantages[i]))


ROLLOUT_CONFIG = REPO_ROOT / "adzoo" / "minddrive" / "configs" / "minddrive_qwen2_05B_lora_rollout.py"


def bench_collector(model, spec: SizeSpec, image_size, device) -> dict:
    """Issue #7's GPU collector figure: decision steps/s of the rollout driver (``minddrive.rl.bench``:
    sampled decisions, traces and rewards as in RL) with ``collector_worlds`` embedded simulators in one
    ``VecDriveEnv`` stepped by one batched policy, cameras rendered on the host at the model's input size,
    and the policy as the GPU rollout config runs it (``rollout.policy``: bf16, compiled regions, graphs).
    The first decision tick (compiles and captures at this batch) is timed apart."""
    from minddrive.config import load_config
    from minddrive.models.policy import MindDrivePolicy, policy_options
    from minddrive.rl.bench import bench

    cfg = load_config(ROLLOUT_CONFIG, {"env.image_size": tuple(image_size)})
    configured = dict(cfg.rollout.get("policy") or {}) if device.type == "cuda" else {}
    # The config's runtime first, then the other runtimes: batch sizes vary in a rollout (a world starting
    # an episode decides off the common phase), which compiles and captures pay for.
    # (Compile and graphs lost here in run 5: 7.5 and 12.3-14.1 against 15.3-15.5 decision steps/s for bf16.)
    others = [dict(dtype="bfloat16", merge_adapters=True), dict(dtype="bfloat16")]
    variants = [configured] + ([v for v in others if v != configured] if configured else [])
    results = []
    for runtime in variants:
        policy = acc.accelerate_for_inference(
            MindDrivePolicy(copy.deepcopy(model), device, **policy_options(runtime)), runtime).eval()
        try:
            warm = bench(cfg, None, spec.collector_worlds, cfg.rollout.get("decision_interval", 5), policy=policy)
            out = bench(cfg, None, spec.collector_worlds, spec.collector_ticks, policy=policy, seed=2_000_000)
        finally:
            acc.decompile_regions(policy.model)
            del policy
            free_memory(device)
        results.append(dict(out, runtime=runtime, first_decision_tick_s=warm["seconds"]))
    return dict(results[0], variants=results[1:], config=str(ROLLOUT_CONFIG.relative_to(REPO_ROOT)),
                image_size=list(image_size), host_threads=1)


def ppo_samples_per_s(adapter, dataset, batch_size: int, device: torch.device, seed: int = 0, epochs: int = 1,
                      cache_scenes: bool = True, micro_batch_size: int | None = None) -> tuple[float, dict]:
    """``epochs`` PPO epochs over ``dataset`` (after a one-minibatch warm-up); samples/s (steps x epochs per
    second) and the last metrics. As the GPU RL configs run it: the learner re-scores every step before the
    first epoch (``recompute_old_log_probs``), a gradient-free pass included in the time."""
    from minddrive.rl.ppo import PPOHyperParams, ppo_update, select_trainable

    hp = PPOHyperParams(epochs=epochs, batch_size=batch_size, seed=seed, cache_scenes=cache_scenes,
                        recompute_old_log_probs=True, micro_batch_size=micro_batch_size)
    params = select_trainable(adapter, hp.trainable)
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warm = torch.utils.data.Subset(dataset, range(min(batch_size, len(dataset))))
    ppo_update(adapter, optimizer, warm, hp, device, show_progress=False)
    synchronize(device)
    start = time.perf_counter()
    metrics = ppo_update(adapter, optimizer, dataset, hp, device, show_progress=False)
    synchronize(device)
    # Ranks take disjoint shards of the dataset (ppo_update), so this is the global rate under torchrun too.
    return len(dataset) * epochs / (time.perf_counter() - start), metrics


def bench_ppo(model, spec: SizeSpec, image_size, device) -> dict:
    """The PPO update at ``spec.ppo_batch`` per minibatch, as the size's GPU RL config runs it (its
    ``ppo.micro_batch_size``; ``ppo.compile`` for the compiled figure)."""
    from minddrive.config import load_config
    from minddrive.models import MindDrivePolicy

    ppo_cfg = load_config(str(REPO_ROOT / "adzoo" / "minddrive" / "configs" / spec.ppo_config)).ppo
    micro = ppo_cfg.get("micro_batch_size")
    policy = MindDrivePolicy(model, device)
    count = spec.ppo_batch * spec.ppo_minibatches
    out: dict[str, Any] = dict(batch=spec.ppo_batch, minibatches=spec.ppo_minibatches, micro_batch=micro)

    def rate(staged, steps=None, **kw):
        adapter = PPOPolicyAdapter(policy, staged)
        steps = steps if steps is not None else SyntheticSteps(count, image_size, with_images=staged is None)
        return ppo_samples_per_s(adapter, steps, spec.ppo_batch, device, micro_batch_size=micro, **kw)

    staged = runtime_batch(spec.ppo_batch, image_size, device, seed=7)
    staged["command"].zero_()
    reset_peak_memory(device)
    samples_per_s, metrics = rate(staged)
    out.update(compute_samples_per_s=round(samples_per_s, 2), peak_mem_gib=peak_memory_gib(device),
               loss=round(metrics["loss"], 4), approx_kl=round(metrics["approx_kl"], 5))
    # Several epochs (the RL configs run 10): from the second on, the frozen scene encoder's tokens come from
    # ppo.SceneCache instead of a new ViT pass per step; the uncached rate is the same update without it.
    for cache in (True, False):
        out[f"epochs3_{'cached' if cache else 'uncached'}_samples_per_s"] = round(
            rate(staged, epochs=3, cache_scenes=cache)[0], 2)
    # The learner as the GPU RL config compiles it (``ppo.compile``); the warm-up minibatch pays the compile.
    free_memory(device)  # CUDA-graph pools cannot reuse the blocks the eager passes left cached
    started = time.perf_counter()
    setting = ppo_cfg.get("compile") if device.type == "cuda" else compile_backend(device)
    graphed = acc.accelerate_for_ppo(policy, setting)
    out.update(compile=setting, cuda_graphs=graphed)
    try:
        reset_peak_memory(device)
        out.update(epochs3_cached_compiled_samples_per_s=round(rate(staged, epochs=3)[0], 2),
                   compiled_peak_mem_gib=peak_memory_gib(device), compiled_wall_s=round(time.perf_counter() - started, 1))
        # End to end as on rollout data: steps hold a rendered frame PNG-packed and are decoded when read, the
        # batch built from host numpy. Steps whose scene tokens are cached are read without their images; the
        # Subset hides ``read`` from ppo_update, so there every epoch decodes every step's images.
        packed = SyntheticSteps(count, image_size, packed=True)
        out["end_to_end_epochs3_compiled_samples_per_s"] = round(rate(None, packed, epochs=3)[0], 2)
        out["end_to_end_epochs3_compiled_decoding_every_epoch_samples_per_s"] = round(
            rate(None, torch.utils.data.Subset(packed, range(count)), epochs=3)[0], 2)
    except Exception as exc:  # noqa: BLE001  (out of memory: keep the eager figures and the rest of the part)
        if not is_out_of_memory(exc):
            raise
        out["epochs3_cached_compiled_samples_per_s"] = f"out of memory: {str(exc).splitlines()[0][:160]}"
    finally:
        acc.decompile_regions(model)
        torch.compiler.reset()  # drop the graphs' memory pools before the end-to-end figure
        free_memory(device)
    staged = None
    free_memory(device)
    out["end_to_end_samples_per_s"] = round(rate(None)[0], 2)
    model.set_trainable(("action_expert", "vision", "projector", "query_decoder", "trajectory_head"))
    model.use_adapter("action_expert")
    return out


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------
class ResultFile:
    """``gpu_bench.json``, rewritten atomically after every measurement so a run cut short keeps what finished.
    Each size's process owns its key; sizes run one after another, so read-modify-write is safe."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict:
        from minddrive.utils.io import read_json

        return read_json(self.path) if self.path.is_file() else {}

    def update(self, size: str, results: dict) -> None:
        from minddrive.utils.io import write_json

        merged = self.read()
        merged[size] = results
        write_json(self.path, merged)


# Seconds a measurement needs at least to be worth starting (build, IL ladder, act + generation, PPO).
MIN_SECONDS = {"model": 10.0, "components": 10.0, "il_step": 20.0, "rollout": 15.0, "ppo": 15.0, "fast_act": 15.0,
               "il_step_compiled": 45.0, "il_step_compiled_llm": 45.0, "il_step_compiled_llm_graphs": 60.0,
               "il_step_compiled_all_graphs": 60.0,
               "collector": 30.0}  # compiles (fwd + bwd) take tens of seconds


def run_size(spec: SizeSpec, device: torch.device, steps: int, ceiling_n: int | None,
             record: Callable[[dict], None] = lambda results: None, deadline: float | None = None,
             parts: tuple[str, ...] | None = None) -> dict:
    """Every figure of one size in ``parts`` order (default ``spec.parts``), calling ``record(results)`` after
    each; a measurement that cannot start ``MIN_SECONDS`` before ``deadline`` (``time.time()``) is skipped."""
    from minddrive.utils.seed import seed_everything

    seed_everything(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    results: dict[str, Any] = dict(size=spec.name, torch=torch.__version__)

    def measure(name: str, fn: Callable[[], dict]) -> dict | None:
        left = None if deadline is None else deadline - time.time()
        if left is not None and left < MIN_SECONDS.get(name, 5.0):
            results[name] = dict(skipped=f"time budget: {max(left, 0):.0f} s left")
            print(f"[{name}] skipped: {results[name]['skipped']}", file=sys.stderr)
            record(results)
            return None
        print(f"[{spec.name}] {name} ...", file=sys.stderr, flush=True)
        value = guarded(results, name, fn, device)
        sustained = results.get("ceiling", {}).get("sustained_tflops")
        if isinstance(value, dict) and sustained and "achieved_tflops" in value:  # MFU's other denominator
            value["mfu_vs_sustained"] = round(value["achieved_tflops"] / sustained, 4)
        record(results)
        return value

    measure("ceiling", lambda: matmul_ceiling(device, ceiling_n or spec.ceiling_n))
    flops_per_s = results["ceiling"].get("flops_per_s")
    ceiling = flops_per_s / 1e12 if flops_per_s else None
    holder: dict[str, Any] = {}

    def build():
        model, image_size, info = build_model(spec, device)
        holder.update(model=model, image_size=image_size)
        return dict(info, image_size=list(image_size))

    if measure("model", build) is None:
        return results
    model, image_size = holder["model"], holder["image_size"]
    benches = {"il_step": lambda: bench_il_step(model, spec, image_size, device, steps, ceiling),
               "components": lambda: bench_components(model, spec, image_size, device),
               "rollout": lambda: bench_rollout(model, spec, image_size, device),
               "ppo": lambda: bench_ppo(model, spec, image_size, device),
               "fast_act": lambda: bench_fast_act(model, spec, image_size, device),
               "il_step_compiled": lambda: bench_il_step_compiled(model, spec, image_size, device, steps, ceiling,
                                                                  results.get("il_step")),
               "il_step_compiled_llm": lambda: bench_il_step_compiled(model, spec, image_size, device, steps, ceiling,
                                                                      results.get("il_step"), llm_layers=True),
               "il_step_compiled_llm_graphs": lambda: bench_il_step_compiled(
                   model, spec, image_size, device, steps, ceiling, results.get("il_step"), llm_layers=True,
                   llm_mode="reduce-overhead"),
               "il_step_compiled_all_graphs": lambda: bench_il_step_compiled(
                   model, spec, image_size, device, steps, ceiling, results.get("il_step"), llm_layers=True,
                   mode="reduce-overhead"),
               "collector": lambda: bench_collector(model, spec, image_size, device)}
    for name in parts or spec.parts:
        measure(name, benches[name])
    return results


def run_children(args, sizes: list[str], deadline: float) -> dict:
    """Each size in its own process (fresh CUDA context, memory released) under a timeout that keeps the whole
    run inside ``deadline``; the children write their figures into ``args.out``/gpu_bench.json as they go."""
    results = ResultFile(Path(args.out) / "gpu_bench.json")
    for i, size in enumerate(sizes):
        left = deadline - time.time()
        if left < MIN_SECONDS["model"] + MIN_SECONDS["rollout"]:
            results.update(size, dict(size=size, skipped=f"time budget: {max(left, 0):.0f} s left"))
            continue
        cmd = [sys.executable, __file__, "--size", size, "--steps", str(args.steps), "--device", args.device,
               "--out", args.out, "--deadline", f"{deadline - 5:.1f}"]
        if args.ceiling_n:
            cmd += ["--ceiling-n", str(args.ceiling_n)]
        cmd += ["--frozen-llm-dtype", args.frozen_llm_dtype]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd)
        try:
            code = proc.wait(timeout=min(args.size_timeout, left))
        except subprocess.TimeoutExpired:
            code = "timeout"
        finally:  # also on SIGTERM from the caller's timeout: never leave a child holding the GPU
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            entry = results.read().get(size, dict(size=size))
            entry["process_error"] = f"exit {code} after {time.perf_counter() - started:.0f} s"
            results.update(size, entry)
    return results.read()


def summary_rows(results: dict) -> list[tuple[str, str, str]]:
    """(size, figure, value) lines of the final table."""
    rows = []
    for size, r in results.items():
        if "process_error" in r:
            rows.append((size, "process", r["process_error"]))
        c = r.get("ceiling", {})
        ceiling = c.get("tflops", c.get("error", c.get("skipped", "?")))
        rows.append((size, "device / ceiling", f"{c.get('device', '?')} {ceiling} TFLOP/s "
                     f"(sustained {c.get('sustained_tflops', '?')})"))
        if "skipped" in r:
            rows.append((size, "all", f"skipped ({r['skipped']})"))
        comp = r.get("components", {})
        if "error" in comp or "skipped" in comp:
            rows.append((size, "act components", str(comp.get("error", comp.get("skipped")))))
        for key, row in comp.items():
            if key.startswith("b") and isinstance(row, dict) and "act_ms" in row:
                rows.append((size, f"act parts {key} {comp['dtype']}",
                             f"scene {row['scene_ms']} + decision {row['decision_pass_ms']} + value {row['value_pass_ms']}"
                             f" + action {row['action_pass_ms']} ms (act {row['act_ms']} ms)"))
                rows.append((size, f"decision-only {key}",
                             f"{row['decision_only_per_s']}/s vs generate-from-scene 2 tok {row['generate2_from_scene_per_s']}/s,"
                             f" {UPSTREAM_ANSWER_TOKENS} tok {row['generate_upstream_from_scene_per_s']}/s"))
        fa = r.get("fast_act", {})
        if "act_b1_old_ms" in fa:
            rows.append((size, "act b1 old/new", f"{fa['act_b1_old_ms']} ms two passes -> {fa.get('act_b1_fused_ms')} "
                         f"fused -> {fa.get('act_b1_fused_graphs_ms')} + CUDA graphs -> "
                         f"{fa.get('act_b1_fused_graphs_vit_compiled_ms', fa.get('compile_error'))} + ViT compiled -> "
                         f"{fa.get('act_b1_fused_graphs_regions_compiled_ms', fa.get('compile_error'))} + LLM/decoder "
                         f"layers compiled -> {fa.get('act_b1_all_graphs_regions_compiled_ms')} + scene graph -> "
                         f"{fa.get('act_b1_patch_matmul_ms')} + patch matmul -> {fa.get('act_b1_merged_ms')} + merged "
                         f"adapters (target < 30; parts {fa.get('b1_parts_merged')}); float8 ViT "
                         f"{fa.get('act_b1_vit_float8_ms')} ms"))
        elif fa:
            rows.append((size, "act b1 old/new", str(fa.get("error", fa.get("skipped")))))
        for key, row in fa.items():
            if key.startswith("decision_only_b") and isinstance(row, dict) and "generate2_per_s" in row:
                rows.append((size, f"decision {key[14:]}", f"{row['decision_only_eager_per_s']}/s eager, "
                             f"{row['decision_only_graphs_per_s']}/s graphs, {row.get('decision_only_compiled_graphs_per_s')}"
                             f"/s compiled+graphs, {row.get('decision_only_merged_compiled_graphs_per_s')}/s merged too "
                             f"vs generate 2 tok {row['generate2_per_s']}/s, "
                             f"{UPSTREAM_ANSWER_TOKENS} tok {row['generate_upstream_per_s']}/s "
                             f"({row['speedup_vs_upstream_generate']}x; target 10x)"))
        for key, label in (("il_step_compiled", "IL step compiled"), ("il_step_compiled_llm", "IL step +LLM comp."),
                           ("il_step_compiled_llm_graphs", "IL step +LLM graphs"),
                           ("il_step_compiled_all_graphs", "IL step all graphs")):
            ilc = r.get(key, {})
            if "samples_per_s" in ilc:
                vs_eager = f" ({ilc['speedup_vs_eager']}x eager)" if "speedup_vs_eager" in ilc else ""
                flops = "" if "speedup_vs_eager" in ilc else " of the analytic FLOPs (eager step not run)"
                rows.append((size, label, f"{ilc['samples_per_s']} samples/s{vs_eager}, MFU {ilc.get('mfu_vs_ceiling')}"
                             f"{flops} ({ilc.get('mfu_vs_sustained', '?')} vs the sustained rate), b{ilc['batch']}, "
                             f"{ilc['peak_mem_gib']} GiB, compile+first step {ilc['first_step_s']} s"))
            elif ilc:
                rows.append((size, label, str(ilc.get("error", ilc.get("skipped")))))
        il = r.get("il_step", {})
        if "error" in il or "skipped" in il or not il:
            rows.append((size, "IL step", str(il.get("error", il.get("skipped", "not run")))))
        else:
            rows.append((size, "IL step", f"b{il['batch']}{' +ckpt' if il['grad_checkpointing'] else ''}: "
                         f"{il['samples_per_s']} samples/s, {il['step_ms']} ms, peak {il['peak_mem_gib']} GiB"))
            rows.append((size, "IL FLOPs / MFU", f"counted {il.get('tflop_per_step') if 'flop_per_step' in il else '?'} "
                         f"TFLOP (MFU {il.get('mfu_vs_ceiling', '?')}), analytic "
                         f"{round(il['analytic_flop_per_step'] / 1e12, 4)} TFLOP (MFU {il.get('mfu_analytic_vs_ceiling', '?')}), "
                         f"counted/analytic {il.get('counted_over_analytic', il.get('flop_count_error', '?'))}"))
        ro = r.get("rollout", {})
        if "error" in ro or "skipped" in ro or not ro:
            rows.append((size, "act", str(ro.get("error", ro.get("skipped", "not run")))))
        else:
            speed = {k: v for k, v in ro.items() if "speedup_vs" in k}
            rows.append((size, "act", f"b1 {ro['act_b1_ms']} ms (target < 30); dec/s {ro['act_decisions_per_s']}"))
            fast = ro.get("fast", {})
            rows.append((size, "act agent rt", f"b1 {fast.get('act_b1_ms')} ms; dec/s {fast.get('act_decisions_per_s')}"))
            rows.append((size, "generate", f"2 tok {ro['generate2_decisions_per_s']}; "
                         f"{UPSTREAM_ANSWER_TOKENS} tok {ro['generate_upstream_decisions_per_s']}; {speed}"))
        co = r.get("collector", {})
        if "decision_steps_per_s" in co:
            for row in [co] + co.get("variants", []):
                rows.append((size, "collector", f"{row['worlds']} simulators, {row['runtime']}: {row['decision_steps_per_s']} "
                             f"decision steps/s ({row['policy_calls']} policy calls {row['policy_s']} s, render "
                             f"{row['render_s']} s, sim {row['sim_s']} s of {row['seconds']} s)"))
        elif co:
            rows.append((size, "collector", str(co.get("error", co.get("skipped")))))
        ppo = r.get("ppo", {})
        if not ppo or "skipped" in ppo:
            rows.append((size, "PPO update", ppo.get("skipped", "not run")))
            continue
        rows.append((size, "PPO update", str(ppo.get("error")) if "error" in ppo else
                     f"b{ppo.get('batch')}"
                     f"{' in micro-batches of %s' % ppo['micro_batch'] if ppo.get('micro_batch') else ''}: "
                     f"{ppo.get('compute_samples_per_s')} samples/s on device, "
                     f"{ppo.get('end_to_end_samples_per_s')} end to end; 3 epochs: "
                     f"{ppo.get('epochs3_cached_samples_per_s')} with the scene cache, "
                     f"{ppo.get('epochs3_uncached_samples_per_s')} without, "
                     f"{ppo.get('epochs3_cached_compiled_samples_per_s')} cached + compiled (ppo.compile); "
                     f"end to end from PNG-packed steps {ppo.get('end_to_end_epochs3_compiled_samples_per_s')} "
                     f"(decoding every epoch: "
                     f"{ppo.get('end_to_end_epochs3_compiled_decoding_every_epoch_samples_per_s')})"))
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="all", choices=[*SIZES, "all"])
    parser.add_argument("--steps", type=int, default=5, help="timed IL steps (after warm-up)")
    parser.add_argument("--out", default="work_dirs/gpu_bench", help="folder for gpu_bench.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--ceiling-n", type=int, default=None, help="matmul size of the ceiling (default per size)")
    parser.add_argument("--size-timeout", type=float, default=200.0, help="seconds per size with --size all")
    parser.add_argument("--budget-s", type=float, default=255.0,
                        help="seconds for the whole run; measurements that cannot start in time are skipped")
    parser.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)  # set for the children
    parser.add_argument("--frozen-llm-dtype", default="bf16", choices=["bf16", "fp32"],
                        help="how the IL parts store the frozen LLM weights (train_cfg.frozen_llm_dtype)")
    parser.add_argument("--parts", default=None,
                        help="comma-separated subset/order of fast_act,components,il_step,il_step_compiled,il_step_compiled_llm,rollout,ppo,collector "
                             "(default: the size's own order)")
    return parser.parse_args(argv)


def _terminate_on_sigterm() -> None:
    """Turn SIGTERM (the shell's ``timeout``) into SystemExit, so ``finally`` blocks run and kill the child."""
    import signal

    def handler(signum, frame):
        raise SystemExit(f"gpu_bench: terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv=None) -> int:
    args = parse_args(argv)
    from minddrive.errors import UserError

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_bench: --device cuda but no CUDA device is visible")
    deadline = args.deadline if args.deadline is not None else time.time() + args.budget_s
    path = Path(args.out) / "gpu_bench.json"
    _terminate_on_sigterm()
    if args.size == "all":
        sizes = ["05b", "3b"] if args.device == "cuda" else ["tiny"]
        if path.is_file():
            path.unlink()  # figures from an earlier run must not pass for this one's
        results = run_children(args, sizes, deadline)
    else:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), int(os.environ.get("OMP_NUM_THREADS", "64")))))
        parts = tuple(args.parts.split(",")) if args.parts else None
        known = ("fast_act", "components", "il_step", "il_step_compiled", "il_step_compiled_llm",
                 "il_step_compiled_llm_graphs", "il_step_compiled_all_graphs", "rollout", "ppo", "collector")
        unknown = [p for p in parts or () if p not in known]
        if unknown:
            print(f"gpu_bench: error: --parts: unknown {unknown}; expected some of {', '.join(known)}",
                  file=sys.stderr)
            return 2
        file = ResultFile(path)
        try:
            spec = dataclass_replace(SIZES[args.size], frozen_llm_dtype=args.frozen_llm_dtype)
            results = {args.size: run_size(spec, torch.device(args.device), args.steps, args.ceiling_n,
                                           record=lambda r: file.update(args.size, r), deadline=deadline,
                                           parts=parts)}
        except UserError as exc:
            print(f"gpu_bench: error: {exc}", file=sys.stderr)
            return 2
    print(f"\n{'size':<5} {'figure':<17} value")
    for size, figure, value in summary_rows(results):
        print(f"{size:<5} {figure:<17} {value}")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
