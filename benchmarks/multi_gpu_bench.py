"""Multi-GPU scaling of the stage-3 IL step and the PPO update (issue #11). Launch with torchrun:

    torchrun --nproc_per_node=1 benchmarks/multi_gpu_bench.py --sizes 05b,3b --micro-batches 8 --out $OUT
    torchrun --nproc_per_node=8 benchmarks/multi_gpu_bench.py --sizes 05b,3b --micro-batches 8 --out $OUT
    python benchmarks/multi_gpu_bench.py --compare $OUT/multi_gpu_w1.json $OUT/multi_gpu_w8.json --out $OUT

What is measured, per size, through the trainer's own pieces (``minddrive.train.distributed``:
``init_distributed``, ``wrap_model``, the ``Engine``'s ``no_sync``/``backward``/``step``):

* IL step: real-shape stage-3 step, DDP for 0.5B, FSDP for 3B (DeepSpeed is not on the device image).
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

# Relative loss difference allowed between the 1-process and N-process runs: bf16 autocast makes the
# gradient all-reduce order visible after a few AdamW steps; fp32 on CPU agrees to rounding.
LOSS_TOLERANCE = {"cuda": 2e-2, "cpu": 1e-4}


def max_across_ranks(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def barrier_sync(device: torch.device) -> None:
    gb.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def il_attempt(model, spec, image_size, info, strategy: dict, batch_size: int, checkpointing: bool,
               micro_batches: int, warmup: int, steps: int, seed: int) -> dict:
    """One (batch, checkpointing) configuration: warm-up steps, then ``steps`` timed optimiser steps."""
    from minddrive.train.distributed import mean_across_ranks, wrap_model
    from minddrive.train.trainer import total_loss

    device, world = info.device, info.world_size
    accumulate = micro_batches // world
    mine = [info.rank * accumulate + j for j in range(accumulate)]  # this rank's global micro-batch indices
    batches = [gb.training_batch(model, batch_size, image_size, spec.text_len, device, seed=m) for m in mine]
    gb.set_gradient_checkpointing(model, checkpointing)
    engine = wrap_model(model, gb.make_optimizer, info, dict(strategy), grad_clip=35.0, accumulate=accumulate,
                        batch_size=batch_size)
    try:
        losses = []
        for step in range(warmup + steps):
            if step == warmup:
                barrier_sync(device)
                gb.reset_peak_memory(device)
                started = time.perf_counter()
            micro_losses = []
            for j, (m, batch) in enumerate(zip(mine, batches)):
                torch.manual_seed(seed * 1_000_003 + step * 1000 + m)  # same draws for micro-batch m in every run
                with engine.no_sync(accumulating=j < accumulate - 1), gb.autocast(device):
                    loss = total_loss(engine(batch))
                    engine.backward(loss)
                micro_losses.append(loss.detach())
            engine.step()
            step_loss = float(torch.stack(micro_losses).float().mean())
            losses.append(mean_across_ranks({"loss": step_loss}, device)["loss"])
        barrier_sync(device)
        seconds = time.perf_counter() - started
    finally:
        del engine
        gb.set_gradient_checkpointing(model, False)
    samples = steps * micro_batches * batch_size
    return dict(batch_per_micro=batch_size, grad_checkpointing=checkpointing, micro_batches=micro_batches,
                accumulate_per_rank=accumulate, global_batch=micro_batches * batch_size, timed_steps=steps,
                step_ms=round(seconds / steps * 1e3, 1), samples_per_s=round(samples / seconds, 3),
                peak_mem_gib_max_rank=max_across_ranks(gb.peak_memory_gib(device), device),
                losses=[round(x, 6) for x in losses])


def keep_adapter_switches_off_requires_grad(model) -> None:
    """Under FSDP (``use_orig_params``) the parameters are non-leaf views of the gathered flat shards during
    forward, and ``requires_grad_(False)`` on them raises. ``MindDrive.use_adapter`` re-applies the trainable
    set (``requires_grad_``) on every switch, also when the adapter is already active, which the IL forward
    does; this instance-level guard makes a switch to the active adapter a no-op (identical in effect: the
    trainable set is unchanged). Switching to another adapter still calls the model's own method."""
    own = model.use_adapter

    def use_adapter(name: str) -> None:
        if getattr(model, "_active_adapter", None) != name:
            own(name)

    model.use_adapter = use_adapter


def build_for(spec, info, strategy: dict):
    model, image_size, build = gb.build_model(spec, info.device)
    model.train()
    if strategy["type"] == "fsdp":
        keep_adapter_switches_off_requires_grad(model)
    return model, image_size, build


def bench_il(spec, info, args, strategy: dict, keep: dict) -> dict:
    model, image_size, build = build_for(spec, info, strategy)
    fitted = fitted_setup(args.fit_from, spec.name)
    if args.il_batch:
        attempts = [(args.il_batch, args.grad_ckpt)]
    elif fitted:
        attempts = [fitted]
    else:
        attempts = list(spec.il_ladder)
    tried = []
    for batch_size, checkpointing in attempts:
        # The model must start every attempt from the same weights: rebuild after a failed one.
        try:
            out = il_attempt(model, spec, image_size, info, strategy, batch_size, checkpointing, args.micro_batches,
                             args.warmup, args.steps, args.seed)
            if strategy["type"] == "ddp":  # DDP leaves the module's parameters whole: PPO can reuse it
                keep.update(model=model, image_size=image_size)
            return dict(out, strategy=describe(strategy), model=build, oom_attempts=tried)
        except Exception as exc:
            if not gb.is_out_of_memory(exc):
                raise
        # Out of memory: leave the except block first so its traceback (holding activations) is released.
        tried.append(dict(batch=batch_size, grad_checkpointing=checkpointing))
        del model
        gb.free_memory(info.device)
        model, image_size, build = build_for(spec, info, strategy)
    raise RuntimeError(f"out of memory in every configuration tried: {tried}")


def fitted_setup(path: str | None, size: str) -> tuple[int, bool] | None:
    """(batch, checkpointing) that fitted in gpu_bench.json's IL step for ``size``, to skip OOM retries."""
    if not path or not Path(path).is_file():
        return None
    from minddrive.utils.io import read_json

    il = read_json(path).get(size, {}).get("il_step", {})
    return (int(il["batch"]), bool(il["grad_checkpointing"])) if "batch" in il else None


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


def fsdp_wrap_policy():
    """One FSDP unit per Qwen2 decoder layer and per ViT block, so parameters, gradients and optimiser state
    are sharded layer by layer (one root unit would gather the whole 3B model at once)."""
    import functools

    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    from minddrive.models.vision import _ViTBlock

    return functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={Qwen2DecoderLayer, _ViTBlock})


def strategy_for(size: str, requested: str) -> dict:
    """``wrap_model`` strategy. FSDP: ``minddrive.train.distributed`` already sets ``use_orig_params=True``
    (frozen base weights and trainable LoRA share units); the auto-wrap policy and the rank-0 weight
    broadcast are passed through as FSDP keyword arguments."""
    kind = requested if requested != "auto" else ("fsdp" if size == "3b" else "ddp")
    if kind == "ddp":
        # Stage 3 trains the query decoder whose auxiliary heads get no gradient when their loss weight is 0.
        return dict(type="ddp", find_unused_parameters=True)
    return dict(type=kind, auto_wrap_policy=fsdp_wrap_policy(), sync_module_states=True)


def describe(strategy: dict) -> dict:
    """The strategy as JSON (the wrap policy is a function)."""
    out = {k: v for k, v in strategy.items() if k != "auto_wrap_policy"}
    if "auto_wrap_policy" in strategy:
        out["auto_wrap"] = "per Qwen2DecoderLayer and ViT block"
        out["use_orig_params"] = True  # set by minddrive.train.distributed.wrap_model
    return out


def run(args) -> int:
    from minddrive.train.distributed import init_distributed, shutdown_distributed
    from minddrive.utils.io import write_json
    from minddrive.utils.seed import seed_everything

    info = init_distributed("pytorch" if "RANK" in os.environ else "none")
    if args.micro_batches % info.world_size:
        raise SystemExit(f"--micro-batches {args.micro_batches} must be a multiple of the {info.world_size} processes")
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    seed_everything(args.seed)
    out_path = Path(args.out) / f"multi_gpu_w{info.world_size}.json"
    results: dict[str, Any] = dict(world_size=info.world_size, device=info.device.type,
                                   device_name=torch.cuda.get_device_name(info.device) if info.device.type == "cuda"
                                   else "cpu", backend=dist.get_backend() if dist.is_initialized() else "none",
                                   nccl_nvls_enable=os.environ.get("NCCL_NVLS_ENABLE"), sizes={})
    for size in args.sizes.split(","):
        spec = gb.SIZES[size]
        entry: dict[str, Any] = {}
        results["sizes"][size] = entry
        strategy = strategy_for(size, args.strategy)
        keep: dict[str, Any] = {}
        gb.guarded(entry, "il_step", lambda: bench_il(spec, info, args, strategy, keep), info.device)
        if strategy["type"] == "ddp" and not args.skip_ppo:
            gb.guarded(entry, "ppo", lambda: bench_ppo(spec, info, args, keep), info.device)
        keep.clear()
        if info.is_main:  # written after every size: a later timeout keeps what finished
            write_json(out_path, results)
    if info.is_main:
        print(f"wrote {out_path}")
    shutdown_distributed()
    return 0


# ----------------------------------------------------------------------------------------------------------
# Compare a 1-process run with an N-process run
# ----------------------------------------------------------------------------------------------------------
def compare(one: dict, many: dict) -> dict:
    """Scaling efficiency and loss agreement of two ``multi_gpu_w*.json`` results."""
    n = many["world_size"]
    tol = LOSS_TOLERANCE.get(many.get("device", "cuda"), 2e-2)
    report: dict[str, Any] = dict(world_sizes=[one["world_size"], n], device=many.get("device_name"),
                                  loss_tolerance_rel=tol,
                                  method=("same global batch: M micro-batches per step; 1 process accumulates M, "
                                          "N processes accumulate M/N each; same per-micro-batch seeds"),
                                  sizes={})
    for size, m in many.get("sizes", {}).items():
        o = one.get("sizes", {}).get(size, {})
        entry: dict[str, Any] = {}
        for part in ("il_step", "ppo"):
            a, b = o.get(part), m.get(part)
            if not a or not b:
                continue
            if "error" in a or "error" in b:
                entry[part] = dict(error=a.get("error") or b.get("error"))
                continue
            eff = b["samples_per_s"] / (n * a["samples_per_s"])
            row = dict(samples_per_s_1=a["samples_per_s"], samples_per_s_n=b["samples_per_s"],
                       scaling_efficiency=round(eff, 3), peak_mem_gib_1=a["peak_mem_gib_max_rank"],
                       peak_mem_gib_n=b["peak_mem_gib_max_rank"])
            if part == "il_step":
                same_setup = all(a[k] == b[k] for k in ("batch_per_micro", "grad_checkpointing", "global_batch"))
                rel = [abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a["losses"], b["losses"])]
                row.update(strategy=b.get("strategy"), same_setup=same_setup, losses_1=a["losses"],
                           losses_n=b["losses"], max_rel_loss_diff=max(rel) if rel else None,
                           losses_match=bool(same_setup and rel and max(rel) <= tol),
                           loss_changed=bool(a["losses"] and abs(a["losses"][-1] - a["losses"][0]) > tol * abs(a["losses"][0])))
            entry[part] = row
        report["sizes"][size] = entry
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="05b,3b", help="comma-separated sizes from gpu_bench.SIZES")
    parser.add_argument("--micro-batches", type=int, default=max(torch.cuda.device_count(), 2),
                        help="micro-batches per optimiser step, global (a multiple of every process count used)")
    parser.add_argument("--il-batch", type=int, default=None, help="samples per micro-batch (default: try 4, 2, 1)")
    parser.add_argument("--grad-ckpt", action="store_true", help="with --il-batch: gradient checkpointing on")
    parser.add_argument("--fit-from", default=None, metavar="GPU_BENCH_JSON",
                        help="take each size's micro-batch and checkpointing from gpu_bench.json's IL step")
    parser.add_argument("--steps", type=int, default=3, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimiser steps first")
    parser.add_argument("--strategy", default="auto", choices=["auto", "ddp", "fsdp"],
                        help="auto: DDP for 0.5B/tiny, FSDP for 3B")
    parser.add_argument("--skip-ppo", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="work_dirs/multi_gpu_bench")
    parser.add_argument("--compare", nargs=2, metavar=("ONE_JSON", "N_JSON"),
                        help="write OUT/multi_gpu.json from a 1-process and an N-process result")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare:
        from minddrive.utils.io import read_json, write_json

        report = compare(read_json(args.compare[0]), read_json(args.compare[1]))
        write_json(Path(args.out) / "multi_gpu.json", report)
        for size, entry in report["sizes"].items():
            for part, row in entry.items():
                if "error" in row:
                    print(f"{size:<5} {part:<8} error: {row['error']}")
                    continue
                extra = f", losses match: {row['losses_match']} (max rel {row['max_rel_loss_diff']:.2e})" \
                    if part == "il_step" and row.get("max_rel_loss_diff") is not None else ""
                print(f"{size:<5} {part:<8} {row['samples_per_s_1']} -> {row['samples_per_s_n']} samples/s, "
                      f"efficiency {row['scaling_efficiency']}, peak {row['peak_mem_gib_n']} GiB/GPU{extra}")
        print(f"wrote {Path(args.out) / 'multi_gpu.json'}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
