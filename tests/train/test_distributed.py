"""minddrive.train.distributed: DDP defaults, unused-parameter freezing, FSDP options, and 2-process gloo runs
(DDP and FSDP-as-ZeRO-2) that must reproduce the single-process optimiser steps exactly."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from minddrive.errors import UserError
from minddrive.train.distributed import (DistInfo, ddp_bucket_cap_mb, freeze_parameters_without_grad, fsdp_options,
                                         wrap_model)

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


class Block(nn.Module):
    """A frozen base projection plus a trainable low-rank branch, like a LoRA-wrapped LLM layer."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.base = nn.Linear(dim, dim)
        self.lora = nn.Sequential(nn.Linear(dim, 2, bias=False), nn.Linear(2, dim, bias=False))
        self.base.requires_grad_(False)

    def forward(self, x):
        return torch.tanh(self.base(x) + self.lora(x))


class Toy(nn.Module):
    """Two blocks, a used head and an auxiliary head no loss reaches (stage 3's detection heads)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(8, 1)
        self.aux_head = nn.Linear(8, 3)

    def forward(self, x):
        features = self.blocks(x)
        self.aux_head(features.detach())  # computed, but outside the loss's graph
        return self.head(features).pow(2).mean()


def micro_batch(m: int) -> torch.Tensor:
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(100 + m))


def test_bucket_cap_scales_with_trainable_size_within_bounds():
    big = nn.Linear(4096, 4096)  # 64 MiB of fp32 gradients -> 25 MiB floor (64 / 12 < 25)
    assert ddp_bucket_cap_mb(big) == 25.0
    huge = nn.Embedding(100_000, 4096)  # 1562.5 MiB -> 130.2 MiB, about 12 buckets
    assert ddp_bucket_cap_mb(huge) == pytest.approx(1562.5 / 12, abs=0.1)
    huge.weight.requires_grad_(False)  # frozen weights are not all-reduced: nothing to bucket
    assert ddp_bucket_cap_mb(huge) == 25.0


def test_freeze_parameters_without_grad_freezes_only_the_unreached_head():
    model = Toy()
    frozen = freeze_parameters_without_grad(model, lambda: model(micro_batch(0)))
    assert frozen == ["aux_head.weight", "aux_head.bias"]
    assert not model.aux_head.weight.requires_grad and model.head.weight.requires_grad
    assert model.blocks[0].lora[0].weight.requires_grad and not model.blocks[0].base.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())  # the probe leaves no gradient behind


def test_accumulation_through_cuda_graphs_copies_the_first_gradients_out_and_trains_the_same():
    """``Engine.backward(accumulating=True)`` with CUDA-graphed regions: the gradients autograd adopted in a
    step's first micro-batch (graph-owned memory on a GPU) are replaced by copies, the next micro-batches add
    into those copies in place, and the weights follow the plain path exactly."""
    from minddrive.train.distributed import Engine

    def train(graphed: bool):
        model = Toy()
        trainable = [p for p in model.parameters() if p.requires_grad]
        engine = Engine(model, model, torch.optim.AdamW(trainable, lr=1e-2), grad_clip=1.0, accumulate=3)
        engine.cuda_graphed = graphed
        head = model.head.weight
        landed = []  # where autograd put the head's gradient, after each micro-batch
        head.register_post_accumulate_grad_hook(lambda p: landed.append(p.grad.data_ptr()))
        for step in range(2):
            for m in range(3):
                engine.backward(engine(micro_batch(3 * step + m)), accumulating=m < 2)
                if graphed and m == 0:  # adopted, then copied out
                    copy = head.grad.data_ptr()
                    assert copy != landed[-1]
                elif graphed:  # added in place into the copy
                    assert head.grad.data_ptr() == landed[-1] == copy
            engine.step()
            assert all(p.grad is None for p in trainable)
        return [p.detach().clone() for p in model.parameters()]

    graphed, plain = train(True), train(False)
    assert all(torch.equal(a, b) for a, b in zip(graphed, plain)) and not torch.equal(graphed[-4], Toy().head.weight)


def test_fsdp_options_translate_config_keys():
    from torch.distributed.fsdp import BackwardPrefetch, ShardingStrategy

    model = Toy()
    options = fsdp_options(model, dict(sharding_strategy="SHARD_GRAD_OP", backward_prefetch="BACKWARD_PRE",
                                       wrap_modules=("Block",), shard_frozen=False, mixed_precision="bf16"))
    assert options["sharding_strategy"] is ShardingStrategy.SHARD_GRAD_OP
    assert options["backward_prefetch"] is BackwardPrefetch.BACKWARD_PRE
    assert options["limit_all_gathers"] is True
    assert options["mixed_precision"].param_dtype is torch.bfloat16
    assert options["mixed_precision"].reduce_dtype is torch.float32
    # exactly the two frozen base projections (weight + bias each) stay out of FSDP
    assert {id(p) for p in options["ignored_states"]} == {id(p) for b in model.blocks for p in b.base.parameters()}
    assert "shard_frozen" not in options and "wrap_modules" not in options
    assert "ignored_states" not in fsdp_options(model, dict(wrap_modules=("Block",)))  # default: shard everything
    with pytest.raises(UserError, match="wrap_modules.*Qwen2DecoderLayer"):
        fsdp_options(model, dict(wrap_modules=("Block", "Qwen2DecoderLayer")))
    with pytest.raises(UserError, match="sharding_strategy.*ZERO2"):
        fsdp_options(model, dict(sharding_strategy="ZERO2"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_steps(info: DistInfo, strategy: dict | None, micro_batches: int = 4, steps: int = 3) -> list[float]:
    """``steps`` optimiser steps over ``micro_batches`` fixed micro-batches split across ranks; returns the
    head and one LoRA row after each step, concatenated (gathered whole under FSDP)."""
    model = Toy()
    freeze_parameters_without_grad(model, lambda: model(micro_batch(0)))
    accumulate = micro_batches // info.world_size
    mine = [info.rank * accumulate + j for j in range(accumulate)]
    engine = wrap_model(model, lambda m: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=0.05),
                        info, strategy, grad_clip=1.0, accumulate=accumulate, batch_size=4)
    trace = []
    for _ in range(steps):
        for j, m in enumerate(mine):
            with engine.no_sync(accumulating=j < accumulate - 1):
                engine.backward(engine(micro_batch(m)))
        engine.step()
        if strategy and strategy["type"] == "fsdp" and info.is_distributed:
            from torch.distributed.fsdp import FullyShardedDataParallel

            with FullyShardedDataParallel.summon_full_params(engine.wrapped):
                trace.extend(model.head.weight.detach().flatten().tolist() + model.blocks[1].lora[1].weight[0].tolist())
        else:
            trace.extend(model.head.weight.detach().flatten().tolist() + model.blocks[1].lora[1].weight[0].tolist())
    return trace


def _worker(rank: int, world: int, port: int, strategy: dict, out: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from minddrive.train.distributed import init_distributed, shutdown_distributed

    info = init_distributed("pytorch")
    try:
        out[rank] = train_steps(info, strategy)
    finally:
        shutdown_distributed()


@pytest.mark.parametrize("strategy", [
    dict(type="ddp"),  # gradient_as_bucket_view on, no unused-parameter search (the aux head is frozen)
    dict(type="fsdp", sharding_strategy="SHARD_GRAD_OP", shard_frozen=False, wrap_modules=("Block",),
         sync_module_states=True),
], ids=["ddp", "fsdp_zero2"])
def test_two_ranks_reproduce_single_process_accumulation(strategy):
    single = train_steps(DistInfo(), strategy)
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), strategy, out), nprocs=2, join=True)
    assert out[0] == pytest.approx(out[1], abs=1e-7)  # ranks hold identical weights
    assert out[0] == pytest.approx(single, abs=2e-6)  # and the same as 1 process accumulating 4 micro-batches
    assert single[-1] != pytest.approx(single[0], abs=1e-3)  # the steps really moved the weights


# ------------------------------------------------------------------------------------------ benchmark helpers
@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    import multi_gpu_bench

    return multi_gpu_bench


def test_bench_arguments_per_size(bench, tmp_path):
    args = bench.parse_args(["--micro-batches", "05b=4,3b=2", "--il-setup", "3b=4:ckpt,05b=2", "--sizes", "05b,3b"])
    assert (args.micro_batches_for("05b"), args.micro_batches_for("3b"), args.micro_batches_for("tiny")) == (4, 2, 4)
    assert bench.parse_args(["--micro-batches", "6"]).micro_batches_for("3b") == 6
    assert bench.il_setups(args) == {"3b": (4, True), "05b": (2, False)}
    fitted = tmp_path / "gpu_bench.json"
    fitted.write_text('{"05b": {"il_step": {"batch": 4, "grad_checkpointing": false}}, "3b": {"il_step": {"error": "x"}}}')
    args = bench.parse_args(["--fit-from", str(fitted), "--il-setup", "3b=4:ckpt"])
    assert bench.il_setups(args) == {"05b": (4, False), "3b": (4, True)}
    assert bench.strategies_for("3b", "auto") == ["fsdp_full"]          # ZeRO-2-style is opt-in (failed on NCCL)
    assert bench.strategies_for("05b", "auto") == ["ddp"]
    with pytest.raises(SystemExit):
        bench.strategies_for("05b", "zero3")
    assert bench.spread_ms([0.5, 0.7, 0.6, 2.0]) == dict(median=650.0, min=500.0, max=2000.0)


def test_compare_uses_medians_and_reports_the_spread(bench):
    def il(step_ms: dict, accumulate: int, **extra) -> dict:
        row = dict(samples_per_s=8 / (step_ms["median"] / 1e3), peak_mem_gib_max_rank=10.0, batch_per_micro=4,
                   grad_checkpointing=False, global_batch=8, losses=[3.0, 2.0], timed_steps=6, step_ms=step_ms,
                   fwd_bwd_ms=dict(median=step_ms["median"] - 20), accumulate_per_rank=accumulate)
        return dict(row, **extra)

    one = dict(world_size=1, device="cpu", sizes=dict(s=dict(il_step=il(dict(median=1600, min=1500, max=1800), 2))))
    many = dict(world_size=2, device="cpu", device_name="cpu", sizes=dict(s=dict(
        il_step=il(dict(median=850, min=800, max=1000), 1, allreduce_exposed_ms=30.0),
        il_step_fsdp_full=il(dict(median=1600, min=1600, max=1600), 1, losses=[3.0, 2.5]))))
    rows = bench.compare(one, many)["sizes"]["s"]
    row = rows["il_step"]
    assert row["scaling_efficiency"] == pytest.approx(1600 / (2 * 850), abs=1e-3)
    assert row["scaling_efficiency_range"] == [pytest.approx(1500 / 2000, abs=1e-3), pytest.approx(1800 / 1600, abs=1e-3)]
    assert row["fwd_bwd_ms_per_micro"] == [790.0, 830.0] and row["allreduce_exposed_ms"] == 30.0
    assert row["losses_match"] is True
    # every N-process strategy row is compared with the same 1-process baseline
    assert rows["il_step_fsdp_full"]["scaling_efficiency"] == 0.5
    assert rows["il_step_fsdp_full"]["losses_match"] is False
