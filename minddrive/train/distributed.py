"""Process groups from torchrun's environment, and model wrapping (DDP / FSDP / DeepSpeed) by config.

``torchrun`` (and ``minddrive_dist_train.sh``, which calls it) sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; multi-node runs add NNODES / NODE_RANK on the
launcher side only. The training loop talks to a :class:`Engine`, which hides the one
difference that matters to it: DeepSpeed owns backward/step, torch strategies do not.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from minddrive.errors import UserError
from minddrive.models.acceleration import own_gradients


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(launcher: str = "none", backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment (``launcher="pytorch"``)."""
    cuda = torch.cuda.is_available()
    if launcher == "none":
        return DistInfo(device=torch.device("cuda", 0) if cuda else torch.device("cpu"))
    if launcher != "pytorch":
        raise UserError(f"--launcher: expected 'none' or 'pytorch', got {launcher!r}")
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise UserError(f"--launcher pytorch: environment lacks {', '.join(missing)} (start through torchrun)")
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"), rank=rank, world_size=world,
                                device_id=device if cuda else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_across_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar logs over ranks (one all-reduce) so rank 0 logs the global figure."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist()))


class Engine:
    """Backward, clip and step for a wrapped model; ``module`` is the bare model underneath."""

    def __init__(self, model: nn.Module, wrapped: nn.Module, optimizer: torch.optim.Optimizer,
                 grad_clip: float | None, accumulate: int = 1):
        self.module = model
        self.wrapped = wrapped
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.accumulate = accumulate
        # Set when the model's regions replay CUDA graphs (``train_cfg.compile`` mode "reduce-overhead"):
        # see :meth:`backward`.
        self.cuda_graphed = False
        self._grads_copied = False

    def __call__(self, batch):
        return self.wrapped(batch)

    def no_sync(self, accumulating: bool):
        """Skip the gradient all-reduce on accumulation micro-steps that are not the last."""
        if accumulating and hasattr(self.wrapped, "no_sync"):
            return self.wrapped.no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, accumulating: bool = False) -> None:
        """Accumulate the gradient of one micro-batch's loss (averaged over ``accumulate`` micro-batches);
        ``accumulating``: another micro-batch's backward follows before the step.

        Through CUDA-graphed regions the gradients of a step's first backward live in graph memory the next
        replay overwrites (:func:`~minddrive.models.acceleration.own_gradients`), so the first accumulating backward
        of a step copies them out; later ones add into the copies."""
        (loss / self.accumulate).backward()
        if accumulating and self.cuda_graphed and not self._grads_copied:
            own_gradients(p for group in self.optimizer.param_groups for p in group["params"])
            self._grads_copied = True

    def step(self) -> torch.Tensor | float:
        """Clip, step, zero grads; returns the pre-clip gradient norm (a device tensor: reading it waits for
        the GPU, so the trainer reads it only at log lines)."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.grad_clip:
            clip = getattr(self.wrapped, "clip_grad_norm_", None)  # FSDP needs its own (sharded) version
            norm = clip(self.grad_clip) if clip else torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.optimizer.step()
        self.zero_grad()
        return norm.detach()

    def zero_grad(self) -> None:
        """Drop the accumulated gradients (after a step, or to discard passes that should not update)."""
        self.optimizer.zero_grad(set_to_none=True)
        self._grads_copied = False


class DeepSpeedEngine(Engine):
    """DeepSpeed owns the optimiser step, loss scaling, gradient clipping and accumulation."""

    def no_sync(self, accumulating: bool):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, accumulating: bool = False) -> None:
        # DeepSpeed divides by its own accumulation count (``accumulate``) and steps only at the boundary, which
        # the caller's ``accumulating`` sets: PPO's minibatches split into a varying number of micro-batches
        # (a short last minibatch), so DeepSpeed's own micro-step count would put the boundary elsewhere.
        self.wrapped.set_gradient_accumulation_boundary(not accumulating)
        self.wrapped.backward(loss)
        self.wrapped.step()

    def step(self) -> float:
        norm = self.wrapped.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")


def wrap_model(model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer], info: DistInfo,
               strategy: dict | None, grad_clip: float | None, accumulate: int, batch_size: int,
               wrap_single: bool = False) -> Engine:
    """Wrap by ``strategy=dict(type="ddp"|"fsdp"|"deepspeed", ...)``; single-process runs stay bare.

    ``make_optimizer(module)`` is called on the module whose parameters the optimiser must hold
    (the wrapped one for FSDP, which re-creates parameters as views of its flat shards).
    DDP keys are passed to ``DistributedDataParallel`` over these defaults: gradients as views of the
    all-reduce buckets (no copy, one gradient-sized buffer less) and ``bucket_cap_mb`` from the trainable
    size (:func:`ddp_bucket_cap_mb`). FSDP keys: see :func:`fsdp_options`. ``wrap_single``: wrap a 1-process
    group too (benchmarks comparing the wrappers' own costs at world size 1).
    """
    strategy = dict(strategy or {"type": "ddp"})
    kind = strategy.pop("type", "ddp")
    if kind == "deepspeed":
        return _wrap_deepspeed(model, make_optimizer(model), info, strategy, grad_clip, accumulate, batch_size)
    if kind not in ("ddp", "fsdp"):
        raise UserError(f"strategy.type: unknown {kind!r}; expected one of: ddp, fsdp, deepspeed")
    if not info.is_distributed and not (wrap_single and dist.is_initialized()):
        return Engine(model, model, make_optimizer(model), grad_clip, accumulate)
    if kind == "ddp":
        ids = [info.device.index] if info.device.type == "cuda" else None
        options = dict(gradient_as_bucket_view=True, bucket_cap_mb=ddp_bucket_cap_mb(model))
        options.update(strategy)
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids, **options)
        return Engine(model, wrapped, make_optimizer(model), grad_clip, accumulate)
    from torch.distributed.fsdp import FullyShardedDataParallel

    options = fsdp_options(model, strategy)
    if options.pop("sync_module_states", False):
        # Done here rather than by FSDP: FSDP syncs only the parameters it manages (not ignored_states) and
        # refuses the option on CPU; one broadcast per tensor before sharding covers every case the same way.
        broadcast_from_main(list(model.parameters()) + list(model.buffers()))
    # device_id also on CPU: FSDP refuses to start without an accelerator unless told the device.
    wrapped = FullyShardedDataParallel(model, device_id=info.device, use_orig_params=True, **options)
    return Engine(model, wrapped, make_optimizer(wrapped), grad_clip, accumulate)


def ddp_bucket_cap_mb(model: nn.Module, buckets: int = 12, low: float = 25.0, high: float = 256.0) -> float:
    """All-reduce bucket size giving about ``buckets`` buckets over the trainable gradients, within
    [low, high] MiB: DDP's 25 MiB default cuts the 0.5B stage-3 gradients (1.3 GB) into ~54 all-reduces;
    a dozen keeps enough buckets for the communication to overlap the backward pass with fewer launches."""
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return round(min(high, max(low, grad_bytes / 2**20 / buckets)), 1)


def fsdp_options(model: nn.Module, strategy: dict) -> dict:
    """FSDP keyword arguments from config-friendly keys (any other key is passed through unchanged).

    * ``sharding_strategy``: ``"FULL_SHARD"`` (ZeRO-3), ``"SHARD_GRAD_OP"`` (ZeRO-2: parameters are gathered
      once per forward and kept through backward), ``"NO_SHARD"``; or the enum.
    * ``wrap_modules``: class names (e.g. ``("Qwen2DecoderLayer", "_ViTBlock")``), one FSDP unit per such module.
    * ``shard_frozen``: ``False`` leaves parameters that do not require grad out of FSDP (``ignored_states``):
      they stay whole on every rank and are never communicated. With a frozen LLM base and a trainable
      ViT + LoRA (stage 3), FSDP then moves only the trainable weights instead of all-gathering the whole base
      model in every forward (and backward), which is what DeepSpeed ZeRO-2 does with frozen parameters too.
    * ``mixed_precision``: ``"bf16"`` (parameters gathered and computed in bf16, gradients reduced in fp32,
      buffers untouched) or a ``MixedPrecision``.
    * ``backward_prefetch``: ``"BACKWARD_PRE"`` / ``"BACKWARD_POST"`` or the enum.
    ``limit_all_gathers`` defaults to True (bounds the prefetched all-gathers, hence memory).
    """
    from torch.distributed.fsdp import BackwardPrefetch, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    options = dict(strategy)
    options.setdefault("limit_all_gathers", True)
    for key, enum in (("sharding_strategy", ShardingStrategy), ("backward_prefetch", BackwardPrefetch)):
        value = options.get(key)
        if isinstance(value, str):
            if value not in enum.__members__:
                raise UserError(f"strategy.{key}: unknown {value!r}; expected one of {', '.join(enum.__members__)}")
            options[key] = enum[value]
    names = options.pop("wrap_modules", None)
    if names:
        names = set(names)
        classes = {type(m) for m in model.modules() if type(m).__name__ in names}
        missing = names - {c.__name__ for c in classes}
        if missing:
            raise UserError(f"strategy.wrap_modules: no module of class {sorted(missing)} in the model")
        options["auto_wrap_policy"] = ModuleWrapPolicy(classes)
    if not options.pop("shard_frozen", True):
        frozen = [p for p in model.parameters() if not p.requires_grad]
        if frozen:
            options["ignored_states"] = frozen
    precision = options.get("mixed_precision")
    if isinstance(precision, str):
        if precision != "bf16":
            raise UserError(f"strategy.mixed_precision: expected 'bf16', got {precision!r}")
        options["mixed_precision"] = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return options


def broadcast_from_main(tensors) -> None:
    """Copy rank 0's values of ``tensors`` to every rank (in place)."""
    if not dist.is_initialized():
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def freeze_parameters_without_grad(model: nn.Module, probe: Callable[[], torch.Tensor]) -> list[str]:
    """Run ``probe()`` (one forward returning a loss) and its backward on the bare ``model``; every parameter that
    requires grad but received none is frozen, and the names are returned. Gradients are cleared afterwards.

    DDP must otherwise be built with ``find_unused_parameters=True``, which walks the autograd graph after
    every forward to mark those parameters ready. Freezing them changes nothing in training: AdamW skips a
    parameter without a gradient. Stage 3, for example, builds the query decoder's detection and lane heads
    but gives their losses no weight. Call it with the same input on every rank (the set must agree)."""
    model.zero_grad(set_to_none=True)
    probe().backward()
    unused = [(name, p) for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for _, p in unused:
        p.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    return [name for name, _ in unused]


def deepspeed_stage(options: dict) -> int:
    """``strategy.zero_stage`` checked (``strategy`` keys for DeepSpeed: ``zero_stage``, ``config``).

    Stage 3 is refused: it partitions the parameters themselves, and the trainer's checkpoints read the bare
    module's weights and the optimiser's ``state_dict`` (on the 2-process CPU run the first checkpoint fails
    with a KeyError in ``Optimizer.state_dict``). FSDP ``FULL_SHARD`` is the ZeRO-3 route."""
    unknown = sorted(set(options) - {"type", "zero_stage", "config"})
    if unknown:
        raise UserError(f"strategy: unknown keys {unknown} for type='deepspeed'; expected zero_stage, config")
    stage = options.get("zero_stage", 2)
    if stage == 3:
        raise UserError("strategy.zero_stage=3: the trainer's checkpoints cannot gather ZeRO-3's partitioned "
                        "parameters; use zero_stage 1 or 2, or strategy.type='fsdp' (FULL_SHARD)")
    if stage not in (0, 1, 2):
        raise UserError(f"strategy.zero_stage: expected 0, 1 or 2, got {stage!r}")
    return stage


def _wrap_deepspeed(model, optimizer, info, options, grad_clip, accumulate, batch_size) -> Engine:
    stage = deepspeed_stage(options)
    try:
        import deepspeed  # imported only when selected: it is an optional extra
    except ImportError:
        raise UserError("strategy.type='deepspeed': deepspeed is not installed (pip install -e '.[deepspeed]')") from None
    ds_config = {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": accumulate,
        "gradient_clipping": grad_clip or 0.0,
        "zero_optimization": {"stage": stage, "overlap_comm": True,
                              "contiguous_gradients": True},
        # The trainer's bf16 autocast, as under DDP/FSDP: DeepSpeed switches an outer autocast off inside its
        # forward unless its own torch_autocast section asks for it, and its "bf16" section would instead cast
        # the weights (float32 inputs then meet bf16 weights). Gradients are reduced in float32 as under DDP.
        "torch_autocast": {"enabled": info.device.type == "cuda", "dtype": "bfloat16",
                           "lower_precision_safe_modules": []},
    }
    ds_config.update(options.pop("config", {}))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return DeepSpeedEngine(model, engine, optimizer, grad_clip, accumulate)
