"""Multi-GPU scaling of the stage-3 IL step and the PPO update (issue #11). Launch with torchrun:

    torchrun --nproc_per_node=1 benchmarks/multi_gpu_bench.py --micro-batches 05b=4,3b=2 --il-setup 3b=4:ckpt --out $OUT
    torchrun --nproc_per_node=2 benchmarks/multi_gpu_bench.py --micro-batches 05b=4,3b=2 --il-setup 3b=4:ckpt --out $OUT
    python benchmarks/multi_gpu_bench.py --compare $OUT/multi_gpu_w1.json $OUT/multi_gpu_w2.json --out $OUT

What is measured, per size, through the trainer's own pieces (``minddrive.train.distributed``:
``init_distributed``, ``freeze_parameters_without_grad``, ``wrap_model``, the ``Engine``'s ``no_sync``/``backward``/``step``):

* IL step: real-shape stage-3 step; 0.5B under DDP, 3B under FSDP configured as ZeRO-2 and, for comparison,
  as full sharding (``STRATEGIES``; DeepSpeed ZeRO-2 by name). Every optimiser step is
  timed on its own after ``--warmup`` untimed ones; samples/s comes from the median step, min/max are kept.
  The global batch is fixed: ``--micro-batches`` M micro-batches of B samples per optimiser step. A run
  with N processes gives each rank M/N of them and accumulates over those (``no_sync`` on all but the
  last), so the 1-process run accumulates M micro-batches and the N-process run ideally accumulates 1:
  both take exactly the same optimiser steps on the same data. Micro-batch m is generated from seed m, and
  the model's randomness (VAE sampling, dropout) is re-seeded per (step, m), so the losses of the two runs
  must agree up to reduction order; ``--compare`` checks that within a tolerance.
* PPO update (0.5B): ``minddrive.rl.ppo.ppo_update`` (its explicit gradient all-reduce is what DDP does) at
  batch 32 per rank on staged synthetic rollout steps.

Reported: samples/s (global), peak memory per GPU (max over ranks), and from ``--compare`` the scaling
efficiency = N-process throughput / (N x 1-process throughput) and the loss agreement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))  # torchrun runs the file as a script
import gpu_bench as gb  # noqa: E402  (the shared model builder, synthetic data and timing helpers)
from gpu_bench import acc  # noqa: E402  (minddrive.models.acceleration)

# Relative loss difference allowed between the 1-process and N-process runs: bf16 autocast makes the
# gradient all-reduce order visible after a few AdamW steps; fp32 on CPU agrees to rounding.
LOSS_TOLERANCE = {"cuda": 2e-2, "cpu": 1e-4}


def max_across_ranks(value, device: torch.device):
    """Element-wise maximum over ranks of a float or a list of floats (the slowest rank sets a step's time)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor(value if isinstance(value, list) else [value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist() if isinstance(value, list) else float(t.item())


def barrier_sync(device: torch.device) -> None:
    gb.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def spread_ms(seconds: list[float]) -> dict:
    """Median, min and max of per-step seconds, in ms."""
    return dict(median=round(statistics.median(seconds) * 1e3, 1), min=round(min(seconds) * 1e3, 1),
                max=round(max(seconds) * 1e3, 1))


# Strategies by name. The 1-process run is always the bare model (no wrapper), the baseline of every row.
WRAP_MODULES = ("Qwen2DecoderLayer", "_ViTBlock")  # one FSDP unit per LLM decoder layer and per ViT block
STRATEGIES = {
    # Trainable parameters without a gradient are frozen first (freeze_parameters_without_grad), so DDP
    # needs no unused-parameter search.
    "ddp": dict(type="ddp"),
    "ddp_find_unused": dict(type="ddp", find_unused_parameters=True),  # runs 2-3's setting, for comparison
    # ZeRO-2 as DeepSpeed applies it to this model: trainable weights, their gradients and AdamW state sharded,
    # gathered once per forward and kept through backward; the frozen LLM base whole on every rank, never sent.
    "fsdp_zero2": dict(type="fsdp", sharding_strategy="SHARD_GRAD_OP", shard_frozen=False, wrap_modules=WRAP_MODULES,
                       sync_module_states=True, forward_prefetch=True, backward_prefetch="BACKWARD_PRE"),
    # Runs 2-3's setting (ZeRO-3 over everything, frozen base included): all-gathers the whole model per pass.
    "fsdp_full": dict(type="fsdp", sharding_strategy="FULL_SHARD", wrap_modules=WRAP_MODULES, sync_module_states=True),
    # DeepSpeed ZeRO-2 (the 3B configs' strategy): needs the deepspeed extra; bf16 weights on a GPU.
    "deepspeed_zero2": dict(type="deepspeed", zero_stage=2),
}
# fsdp_zero2 is opt-in (--strategy fsdp_zero2): on 2x H100 (run 4) its first backward fails inside FSDP
# ("changing the parameters between forward and backward for SHARD_GRAD_OP"; it passes on CPU/gloo) and
# the other rank then waits out the part's timeout, so the default runs the full-shard setting only.
DEFAULT_STRATEGIES = {"3b": ("fsdp_full",)}  # other sizes: ("ddp",)


def strategies_for(size: str, requested: str) -> list[str]:
    names = DEFAULT_STRATEGIES.get(size, ("ddp",)) if requested == "auto" else requested.split(",")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise SystemExit(f"--strategy: unknown {unknown}; expected 'auto' or names from {sorted(STRATEGIES)}")
    return list(names)


def il_attempt(model, spec, image_size, info, strategy: dict, batch_size: int, checkpointing: bool,
               micro_batches: int, warmup: int, steps: int, seed: int, no_sync_steps: int = 0,
               graphs: bool = False, wrap_single: bool = False) -> dict:
    """One (batch, checkpointing) configuration: warm-up steps, then ``steps`` timed optimiser steps, each
    timed on its own (device synchronised and ranks at a barrier before it; the slowest rank's time counts).

    ``no_sync_steps`` (DDP, several processes): that many extra forward/backward passes with the gradient
    all-reduce switched off, to tell the communication the backward pass does not hide from slow compute.
    ``graphs``: as the 0.5B stage-3 config trains (``train_cfg.compile`` with CUDA graphs, the frozen LLM
    weights in bf16 on CUDA), set up in the trainer's order: before the wrapper."""
    with gb.frozen_llm_stored_as(model, spec.frozen_llm_dtype if graphs else "fp32", info.device):
        if graphs:
            torch.compiler.reset()
            acc.compile_regions(model, backend=gb.compile_backend(info.device),
                                mode="reduce-overhead" if info.device.type == "cuda" else None)
        try:
            return _il_attempt(model, spec, image_size, info, strategy, batch_size, checkpointing, micro_batches,
                               warmup, steps, seed, no_sync_steps, graphs, wrap_single)
        finally:
            if graphs:
                acc.decompile_regions(model)
                torch.compiler.reset()  # frees the CUDA-graph pools before the next part
                gb.free_memory(info.device)


def _il_attempt(model, spec, image_size, info, strategy: dict, batch_size: int, checkpointing: bool,
                micro_batches: int, warmup: int, steps: int, seed: int, no_sync_steps: int, graphs: bool,
                wrap_single: bool = False) -> dict:
    from minddrive.train.distributed import freeze_parameters_without_grad, mean_across_ranks, wrap_model
    from minddrive.train.trainer import total_loss

    device, world = info.device, info.world_size
    accumulate = micro_batches // world
    mine = [info.rank * accumulate + j for j in range(accumulate)]  # this rank's global micro-batch indices
    batches = [gb.training_batch(model, batch_size, image_size, spec.text_len, device, seed=m) for m in mine]
    gb.set_gradient_checkpointing(model, checkpointing)

    def probe():  # global micro-batch 0 on every rank: all ranks must freeze the same set
        batch = batches[0] if mine[0] == 0 else gb.training_batch(model, batch_size, image_size, spec.text_len,
                                                                   device, seed=0)
        torch.manual_seed(seed)
        with gb.autocast(device):
            return total_loss(model(batch))

    frozen = freeze_parameters_without_grad(model, probe) if not strategy.get("find_unused_parameters") else []
    engine = wrap_model(model, gb.make_optimizer, info, dict(strategy), grad_clip=35.0, accumulate=accumulate,
                        batch_size=batch_size, wrap_single=wrap_single)
    engine.cuda_graphed = graphs and device.type == "cuda"  # as the trainer sets it
    try:
        losses, step_s, fwd_bwd_s, no_sync_s = [], [], [], []
        for step in range(warmup + steps + no_sync_steps):
            syncing = step < warmup + steps
            barrier_sync(device)
            if step == warmup:
                gb.reset_peak_memory(device)
            started = time.perf_counter()
            micro_losses = []
            for j, (m, batch) in enumerate(zip(mine, batches)):
                torch.manual_seed(seed * 1_000_003 + step * 1000 + m)  # same draws for micro-batch m in every run
                if graphs and device.type == "cuda":  # as the trainer: a new generation of graphed regions
                    torch.compiler.cudagraph_mark_step_begin()
                accumulating = j < accumulate - 1 or not syncing
                with engine.no_sync(accumulating=accumulating), gb.autocast(device):
                    loss = total_loss(engine(batch))
                    engine.backward(loss, accumulating=accumulating)
                micro_losses.append(loss.detach())
            gb.synchronize(device)
            backward_done = time.perf_counter()
            if not syncing:  # diagnostic pass: no update, the weights stay those of the last timed step
                engine.zero_grad()
                no_sync_s.append(backward_done - started)
                continue
            engine.step()
            gb.synchronize(device)
            if step >= warmup:
                step_s.append(time.perf_counter() - started)
                fwd_bwd_s.append(backward_done - started)
            step_loss = float(torch.stack(micro_losses).float().mean())
            losses.append(mean_across_ranks({"loss": step_loss}, device)["loss"])
        barrier_sync(device)
        step_s, fwd_bwd_s = max_across_ranks(step_s, device), max_across_ranks(fwd_bwd_s, device)
        if no_sync_s:
            no_sync_s = max_across_ranks(no_sync_s, device)
        peak = max_across_ranks(gb.peak_memory_gib(device), device)
    finally:
        del engine
        gb.set_gradient_checkpointing(model, False)
    global_batch = micro_batches * batch_size
    out = dict(batch_per_micro=batch_size, grad_checkpointing=checkpointing, micro_batches=micro_batches,
               accumulate_per_rank=accumulate, global_batch=global_batch, warmup_steps=warmup, timed_steps=steps,
               # throughput from the median step: one slow step (a clock dip, a straggler) does not move it
               samples_per_s=round(global_batch / statistics.median(step_s), 3),
               samples_per_s_mean=round(global_batch * steps / sum(step_s), 3),
               step_ms=spread_ms(step_s), fwd_bwd_ms=spread_ms(fwd_bwd_s),
               step_ms_all=[round(x * 1e3, 1) for x in step_s], peak_mem_gib_max_rank=peak,
               losses=[round(x, 6) for x in losses], frozen_without_grad=frozen)
    if no_sync_s:
        # Against the fastest pass without the all-reduce: with CUDA-graphed regions the first such pass
        # records new graphs (9.2 s of 2 passes on 2 H100s, RESULTS.md run 8), so a median says nothing.
        out["fwd_bwd_ms_without_allreduce"] = spread_ms(no_sync_s)
        out["allreduce_exposed_ms"] = round(out["fwd_bwd_ms"]["median"] - out["fwd_bwd_ms_without_allreduce"]["min"], 1)
    return out


def bench_il(spec, info, args, strategy: dict, setup: tuple[int, bool] | None, keep: dict) -> dict:
    model, image_size, build = build_for(spec, info)
    attempts = [setup] if setup else list(spec.il_ladder)
    micro_batches = args.micro_batches_for(spec.name)
    no_sync_steps = args.no_sync_steps if strategy["type"] == "ddp" and info.is_distributed else 0
    tried = []
    for batch_size, checkpointing in attempts:
        # The model must start every attempt from the same weights: rebuild after a failed one.
        try:
            out = il_attempt(model, spec, image_size, info, strategy, batch_size, checkpointing, micro_batches,
                             args.warmup, args.steps, args.seed, no_sync_steps, graphs=args.graphs,
                             wrap_single=args.wrap_single)
            # DDP and the bare model leave the module's parameters whole: the PPO part reuses the model.
            if strategy["type"] == "ddp" or not (info.is_distributed or args.wrap_single):
                keep.update(model=model, image_size=image_size)
            return dict(out, strategy=describe(strategy, info, args.wrap_single), model=build, oom_attempts=tried,
                        regions_graphed=args.graphs)
        except Exception as exc:
            if not gb.is_out_of_memory(exc):
                raise
        # Out of memory: leave the except block first so its traceback (holding activations) is released.
        tried.append(dict(batch=batch_size, grad_checkpointing=checkpointing))
        del model
        gb.free_memory(info.device)
        model, image_size, build = build_for(spec, info)
    raise RuntimeError(f"out of memory in every configuration tried: {tried}")


def build_for(spec, info):
    model, image_size, build = gb.build_model(spec, info.device)
    model.train()
    return model, image_size, build


def il_setups(args) -> dict[str, tuple[int, bool]]:
    """Per size (batch, checkpointing): ``--il-setup`` first, then gpu_bench.json's fitted setup (``--fit-from``);
    a size in neither walks its OOM ladder."""
    setups = {}
    if args.fit_from and Path(args.fit_from).is_file():
        from minddrive.utils.io import read_json

        for size, entry in read_json(args.fit_from).items():
            il = entry.get("il_step", {}) if isinstance(entry, dict) else {}
            if "batch" in il:
                setups[size] = (int(il["batch"]), bool(il["grad_checkpointing"]))
    if args.il_batch:
        setups = {size: (args.il_batch, args.grad_ckpt) for size in args.sizes.split(",")}
    for item in filter(None, (args.il_setup or "").split(",")):
        size, _, value = item.partition("=")
        batch, _, flag = value.partition(":")
        if not batch.isdigit() or flag not in ("", "ckpt"):
            raise SystemExit(f"--il-setup: expected SIZE=BATCH or SIZE=BATCH:ckpt, got {item!r}")
        setups[size] = (int(batch), flag == "ckpt")
    return setups


def bench_ppo(spec, info, args, keep: dict) -> dict:
    from minddrive.models import MindDrivePolicy

    if "model" in keep:
        model, image_size = keep.pop("model"), keep.pop("image_size")
    else:
        model, image_size, _ = gb.build_model(spec, info.device)
    policy = MindDrivePolicy(model, info.device)
    staged = gb.runtime_batch(spec.ppo_batch, image_size, info.device, seed=7 + info.rank)
    adapter = gb.PPOPolicyAdapter(policy, staged)
    dataset = gb.SyntheticSteps(spec.ppo_batch * info.world_size * spec.ppo_minibatches, image_size,
                                with_images=False)
    gb.reset_peak_memory(info.device)
    rate, metrics = gb.ppo_samples_per_s(adapter, dataset, spec.ppo_batch, info.device, seed=args.seed)
    return dict(batch_per_rank=spec.ppo_batch, minibatches_per_rank=spec.ppo_minibatches,
                samples_per_s=round(rate, 3), peak_mem_gib_max_rank=max_across_ranks(gb.peak_memory_gib(info.device),
                                                                                   info.device),
                loss=round(metrics["loss"], 5))


def describe(strategy: dict, info, wrap_single: bool = False) -> dict:
    """The strategy as JSON; with one process every strategy is the bare model unless ``--wrap-single``."""
    if not info.is_distributed and not wrap_single:
        return dict(type="none (1 process, bare model)")
    out = dict(strategy)
    if out["type"] == "ddp":
        out.setdefault("gradient_as_bucket_view", True)  # wrap_model's defaults
    elif out["type"] == "fsdp":
        out.update(use_orig_params=True, limit_all_gathers=out.get("limit_all_gathers", True))
    return out


def run(args) -> int:
    from minddrive.train.distributed import init_distributed, shutdown_distributed
    from minddrive.utils.io import write_json
    from minddrive.utils.seed import seed_everything

    info = init_distributed("pytorch" if "RANK" in os.environ else "none")
    for size in args.sizes.split(","):
        if args.micro_batches_for(size) % info.world_size:
            raise SystemExit(f"--micro-batches for {size} ({args.micro_batches_for(size)}) must be a multiple of "
                             f"the {info.world_size} processes")
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    seed_everything(args.seed)
    setups = il_setups(args)
    out_path = Path(args.out) / f"multi_gpu_w{info.world_size}.json"
    results: dict[str, Any] = dict(world_size=info.world_size, device=info.device.type,
                                   device_name=torch.cuda.get_device_name(info.device) if info.device.type == "cuda"
                                   else "cpu", backend=dist.get_backend() if dist.is_initialized() else "none",
                                   nccl_nvls_enable=os.environ.get("NCCL_NVLS_ENABLE"), sizes={})

    def save():  # after every measurement: a later timeout keeps what finished
        if info.is_main:
            write_json(out_path, results)

    for size in args.sizes.split(","):
        spec = gb.SIZES[size]
        entry: dict[str, Any] = {}
        results["sizes"][size] = entry
        names = strategies_for(size, args.strategy)
        if not info.is_distributed and not args.wrap_single:
            names = names[:1]  # one process: the bare model whatever the strategy, measured once
        keep: dict[str, Any] = {}
        for i, name in enumerate(names):
            keep.clear()  # every strategy starts from freshly built weights (the losses are compared)
            gb.free_memory(info.device)
            part = "il_step" if i == 0 else f"il_step_{name}"
            result = gb.guarded(entry, part, lambda: bench_il(spec, info, args, dict(STRATEGIES[name]),
                                                              setups.get(size), keep), info.device)
            if result is not None:
                result["strategy_name"] = name
            if args.wrap_single and not info.is_distributed:
                entry["strategies_at_world_size_1"] = wrappers_side_by_side(entry, names)
            save()
        if not args.skip_ppo and any(STRATEGIES[n]["type"] == "ddp" for n in names):
            gb.guarded(entry, "ppo", lambda: bench_ppo(spec, info, args, keep), info.device)
            save()
        keep.clear()
        gb.free_memory(info.device)
    if info.is_main:
        print(f"wrote {out_path}")
    shutdown_distributed()
    return 0


def wrappers_side_by_side(entry: dict, names: list[str]) -> dict:
    """Per strategy measured so far: median step, peak memory and the largest relative loss difference from the
    first strategy's losses (same data and seeds; bf16 DeepSpeed against fp32-master autocast differs by rounding)."""
    parts = {name: entry.get("il_step" if i == 0 else f"il_step_{name}") for i, name in enumerate(names)}
    first = parts[names[0]]
    out = {}
    for name, row in parts.items():
        if not row or "error" in row:
            out[name] = dict(error=(row or {}).get("error", "not run"))
            continue
        rel = [abs(x - y) / max(abs(x), 1e-8) for x, y in zip(first.get("losses", []), row["losses"])] \
            if first and "losses" in first else []
        out[name] = dict(step_ms_median=row["step_ms"]["median"], peak_mem_gib=row["peak_mem_gib_max_rank"],
                         losses=row["losses"], max_rel_loss_diff_vs_first=max(rel) if rel else None)
    return out


# ----------------------------------------------------------------------------------------------------------
# Compare a 1-process run with an N-process run
# ----------------------------------------------------------------------------------------------------------
def compare(one: dict, many: dict) -> dict:
    """Scaling efficiency and loss agreement of two ``multi_gpu_w*.json`` results.

    Every N-process IL row (``il_step`` and ``il_step_<strategy>``) is compared with the 1-process ``il_step``
    (the bare model). Efficiency uses the median step times; ``scaling_efficiency_range`` pairs the extremes
    (slowest N-process step with the fastest 1-process step, and the reverse) to show the timing spread."""
    n = many["world_size"]
    tol = LOSS_TOLERANCE.get(many.get("device", "cuda"), 2e-2)
    report: dict[str, Any] = dict(world_sizes=[one["world_size"], n], device=many.get("device_name"),
                                  loss_tolerance_rel=tol,
                                  method=("same global batch: M micro-batches per step; 1 process accumulates M, "
                                          "N processes accumulate M/N each; same per-micro-batch seeds; "
                                          "efficiency = N-process samples/s / (N x 1-process samples/s), "
                                          "both from median step times after warm-up"),
                                  sizes={})
    for size, m in many.get("sizes", {}).items():
        o = one.get("sizes", {}).get(size, {})
        entry: dict[str, Any] = {}
        for part in [k for k in m if k.startswith("il_step")] + ["ppo"]:
            a, b = o.get("il_step" if part.startswith("il_step") else part), m.get(part)
            if not a or not b:
                continue
            if "error" in a or "error" in b:
                entry[part] = dict(error=a.get("error") or b.get("error"))
                continue
            eff = b["samples_per_s"] / (n * a["samples_per_s"])
            row = dict(samples_per_s_1=a["samples_per_s"], samples_per_s_n=b["samples_per_s"],
                       scaling_efficiency=round(eff, 3), peak_mem_gib_1=a["peak_mem_gib_max_rank"],
                       peak_mem_gib_n=b["peak_mem_gib_max_rank"])
            if part.startswith("il_step"):
                same_setup = all(a[k] == b[k] for k in ("batch_per_micro", "grad_checkpointing", "global_batch"))
                rel = [abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a["losses"], b["losses"])]
                row.update(strategy=b.get("strategy"), same_setup=same_setup, losses_1=a["losses"],
                           losses_n=b["losses"], max_rel_loss_diff=max(rel) if rel else None,
                           losses_match=bool(same_setup and rel and max(rel) <= tol),
                           loss_changed=bool(a["losses"] and abs(a["losses"][-1] - a["losses"][0]) > tol * abs(a["losses"][0])))
                if isinstance(a.get("step_ms"), dict) and isinstance(b.get("step_ms"), dict):
                    global_batch = b["global_batch"]
                    worst = global_batch / b["step_ms"]["max"] / (n * global_batch / a["step_ms"]["min"])
                    best = global_batch / b["step_ms"]["min"] / (n * global_batch / a["step_ms"]["max"])
                    row.update(step_ms_1=a["step_ms"], step_ms_n=b["step_ms"], timed_steps=[a["timed_steps"],
                               b["timed_steps"]], scaling_efficiency_range=[round(worst, 3), round(best, 3)])
                    # Per micro-batch forward+backward: 1 process runs M of them per step, each rank M/N.
                    row["fwd_bwd_ms_per_micro"] = [round(a["fwd_bwd_ms"]["median"] / a["accumulate_per_rank"], 1),
                                                   round(b["fwd_bwd_ms"]["median"] / b["accumulate_per_rank"], 1)]
                if "allreduce_exposed_ms" in b:
                    row["allreduce_exposed_ms"] = b["allreduce_exposed_ms"]
            entry[part] = row
        report["sizes"][size] = entry
    return report


class Args(argparse.Namespace):
    def micro_batches_for(self, size: str) -> int:
        """``--micro-batches`` is one number for every size or ``SIZE=M,...`` (sizes not named: the first M)."""
        items = [x for x in str(self.micro_batches).split(",") if x]
        plain = [int(x) for x in items if "=" not in x]
        named = {k: int(v) for k, _, v in (x.partition("=") for x in items if "=" in x)}
        if size in named:
            return named[size]
        if plain:
            return plain[0]
        return next(iter(named.values()))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="05b,3b", help="comma-separated sizes from gpu_bench.SIZES")
    parser.add_argument("--micro-batches", default=str(2 * max(torch.cuda.device_count(), 2)),
                        help="micro-batches per optimiser step, global (a multiple of every process count used): "
                             "one number, or per size, e.g. 05b=4,3b=2")
    parser.add_argument("--il-batch", type=int, default=None, help="samples per micro-batch (default: try 4, 2, 1)")
    parser.add_argument("--grad-ckpt", action="store_true", help="with --il-batch: gradient checkpointing on")
    parser.add_argument("--il-setup", default=None, metavar="SIZE=BATCH[:ckpt],...",
                        help="per-size micro-batch size and checkpointing, over --fit-from (e.g. 3b=4:ckpt)")
    parser.add_argument("--fit-from", default=None, metavar="GPU_BENCH_JSON",
                        help="take each size's micro-batch and checkpointing from gpu_bench.json's IL step")
    parser.add_argument("--steps", type=int, default=6, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimiser steps first")
    parser.add_argument("--no-sync-steps", type=int, default=2,
                        help="DDP with several processes: extra forward/backward passes without the all-reduce "
                             "(how much communication the backward does not hide)")
    parser.add_argument("--strategy", default="auto",
                        help=f"auto (0.5B/tiny: ddp; 3B: fsdp_zero2 then fsdp_full) or comma-separated names from "
                             f"{sorted(STRATEGIES)}")
    parser.add_argument("--graphs", action="store_true",
                        help="IL step as the 0.5B stage-3 config trains: regions compiled and CUDA-graphed "
                             "(train_cfg.compile), frozen LLM weights in bf16")
    parser.add_argument("--wrap-single", action="store_true",
                        help="with 1 process (torchrun --nproc_per_node=1): wrap the model in every --strategy "
                             "anyway and report them side by side (the wrappers' own time and memory)")
    parser.add_argument("--skip-ppo", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="work_dirs/multi_gpu_bench")
    parser.add_argument("--compare", nargs=2, metavar=("ONE_JSON", "N_JSON"),
                        help="write OUT/multi_gpu.json from a 1-process and an N-process result")
    return parser.parse_args(argv, namespace=Args())


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare:
        from minddrive.utils.io import read_json, write_json

        report = compare(read_json(args.compare[0]), read_json(args.compare[1]))
        write_json(Path(args.out) / "multi_gpu.json", report)
        for size, entry in report["sizes"].items():
            for part, row in entry.items():
                if "error" in row:
                    print(f"{size:<5} {part:<16} error: {row['error']}")
                    continue
                extra = f", losses match: {row['losses_match']} (max rel {row['max_rel_loss_diff']:.2e})" \
                    if part.startswith("il_step") and row.get("max_rel_loss_diff") is not None else ""
                if "scaling_efficiency_range" in row:
                    extra += (f", range {row['scaling_efficiency_range']}, step ms 1: {row['step_ms_1']} "
                              f"n: {row['step_ms_n']}")
                if "allreduce_exposed_ms" in row:
                    extra += f", exposed all-reduce {row['allreduce_exposed_ms']} ms/step"
                print(f"{size:<5} {part:<16} {row['samples_per_s_1']} -> {row['samples_per_s_n']} samples/s, "
                      f"efficiency {row['scaling_efficiency']}, peak {row['peak_mem_gib_n']} GiB/GPU{extra}")
        print(f"wrote {Path(args.out) / 'multi_gpu.json'}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
