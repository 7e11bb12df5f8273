"""Where the scene encoder's time goes (issue #10): ``encode_scene`` is most of ``policy.act`` at batch 1 and
the ViT is ~94 % of the IL step's FLOPs, so this breaks both down on one GPU, at real shapes:

1. ``matmuls``  the ViT's own linear shapes at batch 1 (6 x 1600 tokens; windowed blocks see 6 x 2304 rows
               with window padding) as bf16 TFLOP/s, next to the 8192^3 ceiling of the same run, and the MLP
               matmuls with the 2730-wide hidden padded to 2736 (aligned rows for the tensor cores);
2. ``modules``  CUDA-event time of each top-level child of the model inside one ``encode_scene`` at batch 1
               (bf16 inference copy), eager and with the ViT blocks compiled;
3. ``kernels``  ``torch.profiler`` tables (by device time, then by host time) of: a compiled ``encode_scene``
               at batch 1; a whole ``act`` at batch 1 with every region compiled (``compile_regions``) and the
               LLM passes CUDA-graphed; the eager fused decision + value LLM pass at batch 1; a compiled ViT
               forward + backward at the IL batch; one whole IL stage-3 step with every region compiled,
               with the forward time of each top-level module inside it (tables in ``scene_profile_*.txt``);
               and where the act and the IL step make the host wait for the GPU (``syncs_*``).

    python benchmarks/scene_profile.py --out $OUT          # on the GPU machine, ~3 minutes
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

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_bench as gb  # noqa: E402  (benchmarks/ is not a package; the device runs it as a script)


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
    aligned = -(-hidden // 16) * 16
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="05b", choices=list(gb.SIZES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--train-batch", type=int, default=4, help="IL batch of the ViT forward+backward profile")
    parser.add_argument("--il-llm-mode", default="reduce-overhead",
                        help="compile mode of the LLM layers in the IL step profile ('default': no CUDA graphs)")
    parser.add_argument("--out", default="work_dirs/scene_profile")
    args = parser.parse_args(argv)
    device, out_dir = torch.device(args.device), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = gb.SIZES[args.size]
    results: dict = {"size": spec.name, "torch": torch.__version__}
    save = lambda: (out_dir / "scene_profile.json").write_text(json.dumps(results, indent=2))  # noqa: E731

    results["ceiling"] = gb.matmul_ceiling(device, spec.ceiling_n)
    model, image_size, info = gb.build_model(spec, device)
    results["model"] = info
    policy, dtype = gb.inference_policy(model, device)
    net = policy.model
    results["matmuls_b1"] = vit_matmuls(net.backbone, 6, device)
    save()
    batch = gb.runtime_batch(1, image_size, device, seed=1)
    with torch.inference_mode(), policy._autocast():
        results["modules_b1_eager"] = module_times(net, lambda: net.encode_scene(batch), device)
        save()
        net.backbone.compile_blocks(backend="inductor" if device.type == "cuda" else "aot_eager")
        results["modules_b1_compiled"] = module_times(net, lambda: net.encode_scene(batch), device)
        results["kernels_b1_compiled"] = kernel_table(lambda: net.encode_scene(batch), device,
                                                      out_dir / "scene_profile_act_b1.txt")
        net.backbone.decompile_blocks()
        net.compile_regions(backend="inductor" if device.type == "cuda" else "aot_eager")
        from minddrive.models.policy import DecoderGraphs
        net.decoder_graphs = DecoderGraphs()
        results["act_b1_all_compiled_ms"] = round(gb.time_device(lambda: policy._act(batch, False, 1.0, None, None),
                                                                 device, warmup=3, runs=10), 2)
        results["syncs_act_b1_all_compiled"] = sync_sites(lambda: policy._act(batch, False, 1.0, None, None), device)
        results["kernels_act_b1_all_compiled"] = kernel_table(lambda: policy._act(batch, False, 1.0, None, None), device,
                                                              out_dir / "scene_profile_act_b1_all.txt")
        net.decoder_graphs = None
        net.decompile_regions()
        scene, _ = net.encode_scene(batch)
        results["decision_value_b1_eager_ms"] = round(
            gb.time_device(lambda: net.decision_and_value(batch, scene), device, warmup=2, runs=5), 2)
        results["kernels_decision_value_b1_eager"] = kernel_table(lambda: net.decision_and_value(batch, scene),
                                                                  device, out_dir / "scene_profile_llm_b1.txt")
    save()
    del policy, net
    gb.free_memory(device)

    backbone = model.backbone  # float32 weights under bf16 autocast, as the IL step runs it
    backbone.train()
    images = torch.randn(args.train_batch * 6, 3, *image_size, device=device)

    def forward_backward():
        with gb.autocast(device):
            backbone(images).float().square().mean().backward()

    backend = "inductor" if device.type == "cuda" else "aot_eager"
    backbone.compile_blocks(backend=backend)
    try:
        results["vit_fwd_bwd_ms"] = round(gb.time_device(forward_backward, device, warmup=2, runs=3), 1)
        results["kernels_vit_fwd_bwd_compiled"] = kernel_table(forward_backward, device,
                                                               out_dir / "scene_profile_vit_train.txt")
        # the IL step's best path: the LLM and query-decoder layers too, the LLM's as CUDA graphs on the GPU
        model.compile_regions(backend=backend, llm_mode=args.il_llm_mode if device.type == "cuda" else None)
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
        model.decompile_regions()
    save()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
