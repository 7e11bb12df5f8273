"""Where the scene encoder's time goes (issue #10): ``encode_scene`` is most of ``policy.act`` at batch 1 and
the ViT is ~94 % of the IL step's FLOPs, so this breaks both down on one GPU, at real shapes:

1. ``matmuls``  the ViT's own linear shapes at batch 1 (6 x 1600 tokens; windowed blocks see 6 x 2304 rows
               with window padding) as bf16 TFLOP/s, next to the 8192^3 ceiling of the same run, and the MLP
               matmuls with the 2730-wide hidden padded as the model does (``_SwiGLU.ALIGN``: aligned rows);
2. ``modules``  CUDA-event time of each top-level child of the model inside one ``encode_scene`` at batch 1
               (bf16 inference copy), eager and with the ViT blocks compiled;
3. ``kernels``  ``torch.profiler`` tables (by device time, then by host time) of: a compiled ``encode_scene``
               at batch 1; a whole ``act`` at batch 1 with every region compiled
               (``acceleration.compile_regions``) and the LLM passes CUDA-graphed; the eager fused decision + value LLM pass at batch 1; a compiled ViT
               forward + backward at the IL batch; one whole IL stage-3 step with every region compiled,
               with the forward time of each top-level module inside it (tables in ``scene_profile_*.txt``);
               and where the act and the IL step make the host wait for the GPU (``syncs_*``).
4. ``il_timeline``  one IL stage-3 step as the 0.5B stage-3 config runs it (every region compiled and
               replayed from CUDA graphs), cut into its phases by marker kernels launched from hooks (forward and
               backward of the ViT, query decoder and LLM; heads and losses; clipping; the optimiser): each
               phase's GPU span, kernel-busy time and top kernels, and its host time and top host ops, from
               one profiled step.
5. ``sdpa``     the ViT's attention shapes at the IL batch (windowed 256-token and global 1600-token) through
               each SDPA backend, forward and forward + backward, in TFLOP/s, from the blocks' packed qkv and
               from contiguous tensors; ``vit_ops``: which host-side ops (with shapes) launch the compiled ViT's
               training kernels.
6. ``ppo``      one PPO minibatch from cached scene tokens (the decision + value LLM pass with gradients,
               backward, AdamW): time, GPU busy share and kernel tables, eager (float32 or bf16-stored frozen
               weights) and with the LLM layers compiled or CUDA-graphed.

    python benchmarks/scene_profile.py --out $OUT          # on the GPU machine, ~3 minutes
    python benchmarks/scene_profile.py --parts il_timeline,sdpa --out $OUT   # the IL step alone, ~2 minutes
    python benchmarks/scene_profile.py --device cpu --size tiny --out /tmp/p   # CPU smoke run
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_bench as gb  # noqa: E402  (benchmarks/ is not a package; the device runs it as a script)
from gpu_bench import acc  # noqa: E402  (minddrive.models.acceleration)


def linear_tflops(rows: int, in_features: int, out_features: int, device: torch.device, runs: int = 20) -> float:
    """Median TFLOP/s of ``F.linear`` (rows x in) @ (in x out) + bias in the run dtype."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    x = torch.randn(rows, in_features, device=device, dtype=dtype)
    w = torch.randn(out_features, in_features, device=device, dtype=dtype)
    bias = torch.randn(out_features, device=device, dtype=dtype)
    ms = gb.time_device(lambda: F.linear(x, w, bias), device, warmup=3, runs=runs)
    return round(2 * rows * in_features * out_features / (ms / 1e3) / 1e12, 2)


def vit_matmuls(backbone, images: int, device: torch.device) -> dict:
    dim = backbone.blocks[0].qkv.in_features
    hidden = backbone.blocks[0].mlp.w3.in_features
    gh, gw = backbone.grid
    window = next((b.window for b in backbone.blocks if b.window), None)
    tokens = images * gh * gw
    padded = images * (-(-gh // window) * window) * (-(-gw // window) * window) if window else tokens
    align = backbone.blocks[0].mlp.ALIGN
    aligned = -(-hidden // align) * align
    shapes = {"qkv": (tokens, dim, 3 * dim), "qkv_window_padded_rows": (padded, dim, 3 * dim),
              "proj": (tokens, dim, dim), "mlp_w12": (tokens, dim, 2 * hidden), "mlp_w3": (tokens, hidden, dim),
              f"mlp_w12_hidden{aligned}": (tokens, dim, 2 * aligned), f"mlp_w3_hidden{aligned}": (tokens, aligned, dim)}
    return {name: dict(shape=list(s), tflops=linear_tflops(*s, device)) for name, s in shapes.items()}


def module_times(model, run, device: torch.device, runs: int = 5, label: str = "encode_scene") -> dict:
    """Median ms of ``run()`` (as ``{label}_ms``) and of each top-level child of ``model`` inside it, over
    ``runs`` calls (forward hooks with CUDA events; one warm-up call not recorded)."""
    events: dict[str, list] = defaultdict(list)
    handles = []
    for name, child in model.named_children():
        def pre(_m, _i, name=name):
            start = torch.cuda.Event(enable_timing=True) if device.type == "cuda" else None
            if start is not None:
                start.record()
            events[name].append([start, None])

        def post(_m, _i, _o, name=name):
            if device.type == "cuda":
                end = torch.cuda.Event(enable_timing=True)
                end.record()
                events[name][-1][1] = end
        handles += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    try:
        run()
        events.clear()
        whole = gb.time_device(run, device, warmup=0, runs=runs)
    finally:
        for h in handles:
            h.remove()
    out = {f"{label}_ms": round(whole, 2)}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for name, pairs in events.items():
            per_call = [s.elapsed_time(e) for s, e in pairs if e is not None]
            calls = max(1, len(per_call) // runs)
            out[f"{name}_ms"] = round(statistics.median(per_call) * calls, 2)
    return out


def sync_sites(fn, device: torch.device, top: int = 12) -> list[dict]:
    """Where ``fn`` makes the host wait for the GPU: ``torch.cuda.set_sync_debug_mode("warn")`` warns at every
    synchronising call; each is keyed by its innermost frames in this repository, transformers, peft or
    compiled code. A sync drains the queue, so the GPU idles while the host launches what comes next."""
    if device.type != "cuda":
        return []
    sites: Counter = Counter()
    wanted = ("/minddrive/", "/transformers/", "/peft/", "torchinductor", "/benchmarks/")

    def record(message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack()[:-1] if any(w in f.filename for w in wanted)]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[::-1][:3])
        sites[where or f"{Path(filename).name}:{lineno}"] += 1

    shown = warnings.showwarning
    warnings.showwarning = record
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = shown
    return [dict(site=site, calls=n) for site, n in sites.most_common(top)]


def kernel_table(fn, device: torch.device, path: Path, rows: int = 30) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    averages = prof.key_averages()
    # by device time, then by host time: where the host, not the GPU, is the bottleneck
    path.write_text(averages.table(sort_by=key, row_limit=rows) + "\n\n"
                    + averages.table(sort_by="self_cpu_time_total", row_limit=rows))
    total = sum(getattr(e, "self_device_time_total", 0) for e in averages) or 1
    top = sorted(averages, key=lambda e: getattr(e, "self_device_time_total", 0), reverse=True)[:12]
    return [dict(name=e.key[:90], self_ms=round(getattr(e, "self_device_time_total", 0) / 1e3, 2),
                 share=round(getattr(e, "self_device_time_total", 0) / total, 3), calls=e.count) for e in top]


def profile_scene(model, image_size, device: torch.device, results: dict, out_dir: Path) -> None:
    """Parts 1-3 at batch 1: the ViT's matmul shapes, per-module times and kernel tables of the scene encoder
    and a whole ``act`` (on a bf16 inference copy of the model)."""
    policy, _ = gb.inference_policy(model, device)
    net = policy.model
    results["matmuls_b1"] = vit_matmuls(net.backbone, 6, device)
    batch = gb.runtime_batch(1, image_size, device, seed=1)
    backend = gb.compile_backend(device)
    act = lambda: policy._act(batch, False, 1.0, None, None)  # noqa: E731
    with torch.inference_mode(), policy._autocast():
        results["modules_b1_eager"] = module_times(net, lambda: net.encode_scene(batch), device)
        acc.compile_vit_blocks(net.backbone, backend=backend)
        results["modules_b1_compiled"] = module_times(net, lambda: net.encode_scene(batch), device)
        results["kernels_b1_compiled"] = kernel_table(lambda: net.encode_scene(batch), device,
                                                      out_dir / "scene_profile_act_b1.txt")
        acc.decompile_vit_blocks(net.backbone)
        acc.compile_regions(net, backend=backend)
        acc.use_cuda_graphs(net, scene=False)
        results["act_b1_all_compiled_ms"] = round(gb.time_device(act, device, warmup=3, runs=10), 2)
        results["syncs_act_b1_all_compiled"] = sync_sites(act, device)
        results["kernels_act_b1_all_compiled"] = kernel_table(act, device, out_dir / "scene_profile_act_b1_all.txt")
        acc.use_cuda_graphs(net, False)
        acc.decompile_regions(net)
        scene, _ = net.encode_scene(batch)
        results["decision_value_b1_eager_ms"] = round(
            gb.time_device(lambda: net.decision_and_value(batch, scene), device, warmup=2, runs=5), 2)
        results["kernels_decision_value_b1_eager"] = kernel_table(lambda: net.decision_and_value(batch, scene),
                                                                  device, out_dir / "scene_profile_llm_b1.txt")


def vit_forward_backward(backbone, images: int, image_size, device: torch.device) -> Callable[[], None]:
    """A ViT forward + backward over ``images`` random images, in training mode with float32 weights under bf16
    autocast, as the IL step runs it."""
    backbone.train()
    x = torch.randn(images, 3, *image_size, device=device)

    def forward_backward():
        with gb.autocast(device):
            backbone(x).float().square().mean().backward()

    return forward_backward


def profile_vit_il(model, spec, image_size, device: torch.device, args, results: dict, out_dir: Path) -> None:
    """Part 3 at the IL batch: a compiled ViT forward + backward, then a whole IL step (every region
    compiled; the LLM layers in ``args.il_llm_mode``): times, forward per module, host syncs, kernel tables."""
    backbone = model.backbone
    forward_backward = vit_forward_backward(backbone, args.train_batch * 6, image_size, device)
    backend = gb.compile_backend(device)
    acc.compile_vit_blocks(backbone, backend=backend)
    try:
        results["vit_fwd_bwd_ms"] = round(gb.time_device(forward_backward, device, warmup=2, runs=3), 1)
        results["kernels_vit_fwd_bwd_compiled"] = kernel_table(forward_backward, device,
                                                               out_dir / "scene_profile_vit_train.txt")
        # the IL step's best path: the LLM and query-decoder layers too, the LLM's as CUDA graphs on the GPU
        acc.compile_regions(model, backend=backend, llm_mode=args.il_llm_mode if device.type == "cuda" else None)
        model.train()
        optimizer = gb.make_optimizer(model)
        il_batch = gb.training_batch(model, args.train_batch, image_size, spec.text_len, device)
        step = lambda: gb.il_train_step(model, optimizer, il_batch, device)  # noqa: E731
        results["il_step_ms"] = round(gb.time_device(step, device, warmup=2, runs=3), 1)
        with gb.autocast(device):  # the training forward alone, as the step runs it
            results["il_step_forward_modules"] = module_times(model, lambda: model(il_batch), device, runs=2,
                                                              label="forward")
        results["syncs_il_step_compiled"] = sync_sites(step, device)
        results["kernels_il_step_compiled"] = kernel_table(step, device, out_dir / "scene_profile_il_step.txt")
    finally:
        acc.decompile_regions(model)
        backbone.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.compiler.reset()  # frees CUDA-graph pools before a later part


MARKER_KERNEL = "spin_kernel"  # what torch.cuda._sleep launches
MARKER_RANGE = "phase marker: "  # the host-side range around each marker launch


class PhaseMarkers:
    """Cuts a step's GPU timeline into phases. ``mark(label)`` launches a marker kernel (``torch.cuda._sleep``)
    and records the label; the profile's kernels run in launch order on one stream, so the n-th marker kernel
    is the n-th label. Kernels inside CUDA graphs carry no host-side ranges, which is why markers, not
    ``record_function``. ``wrap`` marks a callable's forward, and, through gradient hooks, its backward: it
    starts when the gradient of the callable's output arrives and ends when its inputs' gradient does."""

    def __init__(self):
        self.labels: list[str] = []
        self.enabled = False
        self._wrapped: list[tuple[object, str]] = []

    def mark(self, label: str) -> None:
        # A callable's several outputs (or inputs) get their gradients one after another: one marker for them.
        if self.enabled and (not self.labels or self.labels[-1] != label):
            self.labels.append(label)
            with torch.profiler.record_function(MARKER_RANGE + label):
                torch.cuda._sleep(16)

    def _on_gradient(self, values, label: str) -> None:
        from torch.utils._pytree import tree_leaves

        for value in tree_leaves(values):
            if isinstance(value, torch.Tensor) and value.requires_grad:
                value.register_hook(lambda grad: self.mark(label))

    def wrap(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def marked(*args, **kwargs):
            self.mark(f"forward {name}")
            self._on_gradient((args, kwargs), f"backward after {name}")
            out = original(*args, **kwargs)
            self.mark(f"forward after {name}")
            self._on_gradient(out, f"backward {name}")
            return out

        setattr(owner, attr, marked)  # an instance attribute, shadowing the method / module forward
        self._wrapped.append((owner, attr))

    def unwrap(self) -> None:
        for owner, attr in self._wrapped:
            delattr(owner, attr)
        self._wrapped.clear()


def phase_table(kernels: list[tuple[str, float, float]], labels: list[str], top: int = 8) -> dict:
    """Phases of one step from its device activities ``(name, start_us, end_us)`` and the marker labels in
    launch order: per label (summed where a label recurs), the GPU span from its marker to the next, the time
    kernels were running inside it, and its top kernels. ``idle`` = span - busy: the GPU waiting for the host."""
    kernels = sorted(kernels, key=lambda k: k[1])
    markers = [k for k in kernels if MARKER_KERNEL in k[0]]
    work = [k for k in kernels if MARKER_KERNEL not in k[0]]
    if len(markers) != len(labels):
        raise ValueError(f"{len(markers)} marker kernels for {len(labels)} labels")
    phases: dict[str, dict] = {}
    for i, (label, marker) in enumerate(zip(labels, markers)):
        start = marker[2]
        stop = markers[i + 1][1] if i + 1 < len(markers) else start
        inside = [k for k in work if start <= k[1] < stop]
        phase = phases.setdefault(label, dict(span_ms=0.0, busy_ms=0.0, kernels=0, by_name=Counter()))
        phase["span_ms"] += (stop - start) / 1e3
        for name, k_start, k_end in inside:
            phase["busy_ms"] += (min(k_end, stop) - k_start) / 1e3
            phase["by_name"][name[:80]] += (k_end - k_start) / 1e3
        phase["kernels"] += len(inside)
    out = {}
    for label, phase in phases.items():
        out[label] = dict(span_ms=round(phase["span_ms"], 2), busy_ms=round(phase["busy_ms"], 2),
                          idle_ms=round(phase["span_ms"] - phase["busy_ms"], 2), kernels=phase["kernels"],
                          top=[dict(name=n, ms=round(ms, 2)) for n, ms in phase["by_name"].most_common(top)])
    spans = [p["span_ms"] for p in out.values()]
    out["total"] = dict(span_ms=round(sum(spans), 2), busy_ms=round(sum(p["busy_ms"] for p in out.values()), 2))
    return out


def host_phase_table(markers: list[tuple[float, str]], ops: list[tuple[str, float, float]], top: int = 6) -> dict:
    """The host side of :func:`phase_table`: ``markers`` (start_us, label) of the marker ranges, ``ops`` (name,
    start_us, self_us) of the host events; per label, the host time from its marker to the next and the ops
    with the most self time in it. A phase whose host time exceeds its GPU span kept the GPU waiting."""
    markers = sorted(markers)
    phases: dict[str, dict] = {}
    for i, (start, label) in enumerate(markers):
        stop = markers[i + 1][0] if i + 1 < len(markers) else start
        phase = phases.setdefault(label, dict(host_ms=0.0, by_name=Counter()))
        phase["host_ms"] += (stop - start) / 1e3
        for name, op_start, self_us in ops:
            if start <= op_start < stop:
                phase["by_name"][name[:70]] += self_us / 1e3
    return {label: dict(host_ms=round(p["host_ms"], 2),
                        host_top=[dict(name=n, ms=round(ms, 2)) for n, ms in p["by_name"].most_common(top)])
            for label, p in phases.items()}


def il_timeline(model, spec, image_size, device: torch.device, batch_size: int, llm_mode: str) -> dict:
    """One IL step with every region compiled and CUDA-graphed (the 0.5B stage-3 config's
    ``train_cfg.compile``), the frozen LLM weights stored as ``spec.frozen_llm_dtype``, cut into phases
    (:class:`PhaseMarkers`, :func:`phase_table`)."""
    with gb.frozen_llm_stored_as(model, spec.frozen_llm_dtype, device):
        out = _il_timeline(model, spec, image_size, device, batch_size, llm_mode)
    return dict(out, frozen_llm_dtype=spec.frozen_llm_dtype)


def _il_timeline(model, spec, image_size, device: torch.device, batch_size: int, llm_mode: str) -> dict:
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acc.compile_regions(model, backend="inductor", mode="reduce-overhead", llm_mode=llm_mode)
    model.train()
    optimizer = gb.make_optimizer(model)
    batch = gb.training_batch(model, batch_size, image_size, spec.text_len, device)
    markers = PhaseMarkers()
    markers.wrap(model.backbone, "forward", "ViT")
    markers.wrap(model.query_decoder, "forward", "query decoder")
    markers.wrap(model, "run_llm", "LLM")
    step = lambda: gb.il_train_step(model, optimizer, batch, device, mark=markers.mark)  # noqa: E731
    try:
        out = {"step_ms": round(gb.time_device(step, device, warmup=3, runs=5), 1), "batch": batch_size}
        markers.enabled = True
        torch.cuda.synchronize(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize(device)
        kernels = [(e.name, e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
        out["phases"] = phase_table(kernels, markers.labels)
        host = [e for e in prof.events() if e.device_type == DeviceType.CPU]
        host_markers = [(e.time_range.start, e.name[len(MARKER_RANGE):]) for e in host
                        if e.name.startswith(MARKER_RANGE)]
        ops = [(e.name, e.time_range.start, e.self_cpu_time_total) for e in host
               if not e.name.startswith(MARKER_RANGE)]
        for label, row in host_phase_table(host_markers, ops).items():
            out["phases"][label].update(row)
        out["profiled_step_span_ms"] = out["phases"]["total"]["span_ms"]
    finally:
        markers.unwrap()
        acc.decompile_regions(model)
        torch.compiler.reset()
    return out


def device_busy(fn, device: torch.device) -> dict:
    """One profiled call of ``fn``: its GPU span (first kernel start to last kernel end), the time some kernel
    ran within it (overlaps merged), and their ratio; where the ratio is low the host launching kernels, not
    the GPU, bounds ``fn``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False))
    busy, reach = 0, None
    for start, end in spans:
        if reach is None or start > reach:
            busy, reach = busy + end - start, end
        elif end > reach:
            busy, reach = busy + end - reach, end
    span = spans[-1][1] - spans[0][0] if spans else 0
    return dict(kernels=len(spans), span_ms=round(span / 1e3, 2), busy_ms=round(busy / 1e3, 2),
                busy_share=round(busy / span, 3) if span else None)


PPO_VARIANTS = {"eager_fp32_frozen": ("fp32", None), "eager_bf16_frozen": ("bf16", None),
                "compiled_bf16_frozen": ("bf16", "default"), "graphed_bf16_frozen": ("bf16", "reduce-overhead")}


def ppo_minibatch(model, spec, image_size, device: torch.device, out_dir: Path, variants=tuple(PPO_VARIANTS)) -> dict:
    """One PPO minibatch (``spec.ppo_batch`` steps) as ``ppo_update`` runs it from cached scene tokens (every
    epoch after the first): the decision and value LLM pass with gradients through the LoRA adapters, the
    backward and AdamW over the PPO-trainable groups. Per variant: milliseconds per minibatch, samples/s, GPU
    busy share of one profiled minibatch, and its kernel tables (``ppo_<variant>.txt``). Variants: eager with
    float32 frozen weights (PPO as it ran), eager with the frozen LLM weights stored in bf16, and the LLM
    layers compiled (Inductor; with CUDA graphs: ``reduce-overhead``) over bf16-stored weights."""
    from minddrive.models import MindDrivePolicy

    policy = MindDrivePolicy(model, device)
    adapter = gb.PPOPolicyAdapter(policy)  # sets the PPO-trainable groups
    params = [p for p in adapter.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    batch = gb.runtime_batch(spec.ppo_batch, image_size, device, seed=7)
    actions = torch.zeros(spec.ppo_batch, dtype=torch.long, device=device)
    scene = policy.scene_tokens(batch)
    gb.free_memory(device)

    def minibatch():
        log_probs, values, entropy = policy.evaluate_decisions(batch, actions, scene=scene)
        loss = -log_probs[:, 0].mean() + 0.5 * values.pow(2).mean() - 0.01 * entropy.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    out: dict = dict(batch=spec.ppo_batch, scene_tokens=list(scene.shape))
    for name in variants:
        frozen, llm_mode = PPO_VARIANTS[name]
        try:
            with gb.frozen_llm_stored_as(model, frozen, device):
                if llm_mode is not None:
                    for layer in model._decoder_lm[0].layers:
                        layer.compile(backend=gb.compile_backend(device), mode=llm_mode)
                try:
                    ms = gb.time_device(minibatch, device, warmup=3, runs=5)
                    row = dict(ms=round(ms, 1), samples_per_s=round(spec.ppo_batch / ms * 1e3, 1))
                    if device.type == "cuda":
                        row.update(device_busy(minibatch, device))
                        kernel_table(minibatch, device, out_dir / f"ppo_{name}.txt")
                    out[name] = row
                finally:
                    acc.decompile_regions(model)
        except Exception as exc:  # noqa: BLE001  (a variant failing keeps the others)
            out[name] = dict(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
            traceback.print_exc()
        print(f"[ppo] {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def kernel_sources(fn, device: torch.device, rows: int = 25) -> list[dict]:
    """Which host-side ops launch the device time of ``fn`` (its second call, profiled with shapes): per op
    name and input shapes, the kernels' summed time and names. Kernel tables alone cannot say which op of a
    compiled block launched an ATen kernel (e.g. a layout copy inside an extern attention call)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    by_op: dict[tuple[str, str], dict] = {}
    for event in prof.events():
        if not event.kernels:
            continue
        key = (event.name[:90], str(event.input_shapes)[:160])
        entry = by_op.setdefault(key, dict(ms=0.0, calls=0, kernels=Counter()))
        entry["calls"] += 1
        for kernel in event.kernels:
            entry["ms"] += kernel.duration / 1e3
            entry["kernels"][kernel.name[:70]] += kernel.duration / 1e3
    top = sorted(by_op.items(), key=lambda item: item[1]["ms"], reverse=True)[:rows]
    return [dict(op=name, shapes=shapes, ms=round(e["ms"], 2), calls=e["calls"],
                 kernels=[f"{k} {ms:.2f}" for k, ms in e["kernels"].most_common(3)]) for (name, shapes), e in top]


def vit_train_sources(backbone, images: int, image_size, device: torch.device) -> dict:
    """:func:`kernel_sources` of a compiled (not graphed) ViT forward + backward at ``images`` images."""
    forward_backward = vit_forward_backward(backbone, images, image_size, device)
    acc.compile_vit_blocks(backbone, backend=gb.compile_backend(device))
    try:
        return {"fwd_bwd_ms": round(gb.time_device(forward_backward, device, warmup=2, runs=3), 1),
                "sources": kernel_sources(forward_backward, device)}
    finally:
        acc.decompile_vit_blocks(backbone)
        backbone.zero_grad(set_to_none=True)


def sdpa_backends(backbone, images: int, device: torch.device, runs: int = 10) -> dict:
    """The ViT's two attention shapes at ``images`` images through each SDPA backend, as the blocks call it
    (q, k, v strided views of one packed qkv tensor): forward and forward + backward ms and TFLOP/s (the
    backward counted as ``gpu_bench.attention_flops``: 2.5x the forward, as torch's flop counter)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    block = backbone.blocks[0]
    heads, dim = block.heads, block.qkv.in_features
    gh, gw = backbone.grid
    window = next((b.window for b in backbone.blocks if b.window), None)
    shapes = {"global": (images, gh * gw)}
    if window:
        shapes["window"] = (images * -(-gh // window) * -(-gw // window), window * window)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    backends = ([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
                if device.type == "cuda" else [SDPBackend.MATH])
    out: dict = {}
    for shape_name, (b, t) in shapes.items():
        qkv = torch.randn(b, t, 3 * dim, device=device, dtype=dtype, requires_grad=True)
        grad = torch.randn(b, heads, t, dim // heads, device=device, dtype=dtype)
        q_shape = (b, heads, t, dim // heads)
        fwd_flops = gb.attention_flops(q_shape, q_shape, q_shape)
        bwd_flops = gb.attention_flops(q_shape, q_shape, q_shape, backward=True)
        row = out.setdefault(shape_name, {"batch_heads_seq_dim": list(q_shape)})
        separate = [torch.randn(q_shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]
        layouts = {  # as the blocks call it; then three contiguous (B, H, T, D) tensors: the kernels alone
            "packed": lambda: qkv.view(b, t, 3, heads, dim // heads).permute(2, 0, 3, 1, 4),
            "contiguous": lambda: separate,
        }
        for backend in backends:
            for layout, inputs in layouts.items():
                forward = lambda: F.scaled_dot_product_attention(*inputs())  # noqa: E731
                name = backend.name.lower() + ("" if layout == "packed" else f"_{layout}")
                try:
                    with sdpa_kernel(backend):
                        fwd_ms = gb.time_device(lambda: forward().detach(), device, warmup=2, runs=runs)
                        both_ms = gb.time_device(lambda: forward().backward(grad), device, warmup=2, runs=runs)
                    row[name] = dict(
                        forward_ms=round(fwd_ms, 3), forward_tflops=round(fwd_flops / fwd_ms / 1e9, 1),
                        fwd_bwd_ms=round(both_ms, 3), fwd_bwd_tflops=round((fwd_flops + bwd_flops) / both_ms / 1e9, 1))
                    if layout == "packed" and backend == backends[0] and device.type == "cuda":
                        with sdpa_kernel(backend):
                            row[f"{name}_sources"] = kernel_sources(lambda: forward().backward(grad), device, rows=8)
                except RuntimeError as exc:  # a backend that does not take this shape / dtype / device
                    row[name] = dict(error=str(exc).splitlines()[0][:160])
                qkv.grad = None
                for tensor in separate:
                    tensor.grad = None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="05b", choices=list(gb.SIZES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--train-batch", type=int, default=4, help="IL batch of the ViT forward+backward profile")
    parser.add_argument("--il-llm-mode", default="reduce-overhead",
                        help="compile mode of the LLM layers in the IL step profile ('default': no CUDA graphs)")
    parser.add_argument("--parts", default="scene,vit_il",
                        help="comma-separated, in order: scene (1-3 at batch 1), vit_il (3: ViT and IL step "
                             "tables), vit_ops (3: which ops launch the ViT's training kernels), il_timeline (4), "
                             "sdpa (5), ppo (6)")
    parser.add_argument("--frozen-llm-dtype", default="bf16", choices=["bf16", "fp32"],
                        help="how il_timeline stores the frozen LLM weights (train_cfg.frozen_llm_dtype)")
    parser.add_argument("--ppo-variants", default=",".join(PPO_VARIANTS),
                        help=f"which learner set-ups the ppo part runs, some of {', '.join(PPO_VARIANTS)}")
    parser.add_argument("--out", default="work_dirs/scene_profile")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    unknown = set(parts) - {"scene", "vit_il", "vit_ops", "il_timeline", "sdpa", "ppo"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}")
    unknown = set(args.ppo_variants.split(",")) - set(PPO_VARIANTS)
    if unknown:
        parser.error(f"--ppo-variants: unknown {sorted(unknown)}")
    device, out_dir = torch.device(args.device), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = gb.dataclass_replace(gb.SIZES[args.size], frozen_llm_dtype=args.frozen_llm_dtype)
    results: dict = {"size": spec.name, "torch": torch.__version__}
    save = lambda: (out_dir / "scene_profile.json").write_text(json.dumps(results, indent=2))  # noqa: E731

    results["ceiling"] = gb.matmul_ceiling(device, spec.ceiling_n)
    model, image_size, info = gb.build_model(spec, device)
    results["model"] = info
    for part in parts:
        try:
            if part == "scene":
                profile_scene(model, image_size, device, results, out_dir)
            elif part == "vit_il":
                profile_vit_il(model, spec, image_size, device, args, results, out_dir)
            elif part == "vit_ops":
                results["vit_ops"] = vit_train_sources(model.backbone, args.train_batch * 6, image_size, device)
            elif part == "il_timeline":
                results["il_timeline"] = (
                    il_timeline(model, spec, image_size, device, args.train_batch, args.il_llm_mode)
                    if device.type == "cuda" else {"skipped": "marker kernels need CUDA"})
            elif part == "ppo":
                results["ppo"] = ppo_minibatch(model, spec, image_size, device, out_dir, args.ppo_variants.split(","))
            else:
                acc.decompile_vit_blocks(model.backbone)
                results["sdpa"] = sdpa_backends(model.backbone, args.train_batch * 6, device)
        except Exception as exc:  # noqa: BLE001  (one part failing, e.g. out of memory, keeps the others)
            results[f"{part}_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            traceback.print_exc()
        gb.free_memory(device)
        save()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
