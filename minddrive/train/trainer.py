"""Imitation learning (stages 1-3): the whole training loop, top to bottom, in :func:`train`.

Reusable parts live beside it: optimiser and schedule (``optim``), process groups and model
wrapping (``distributed``), logs (``logging``). Config keys read here (see
``adzoo/minddrive/configs/_base_/schedules/``)::

    model, trainable, load_from, seed, data.train (dataset cfg), work_dir
    optimizer     dict(type="AdamW", lr, weight_decay, paramwise_cfg=dict(layer_decay_rate, num_layers, ...))
    param_scheduler dict(type="WarmupCosine", warmup_iters, warmup_ratio, min_lr_ratio)
    train_cfg     dict(max_epochs | max_iters, batch_size, num_workers, accumulate, grad_clip, precision,
                       compile=None | "inductor" | dict(backend, mode, llm_mode): regional torch.compile,
                       frozen_llm_dtype=None | "fp32" | "bf16": ``minddrive.models.acceleration``)
    strategy      dict(type="ddp" | "fsdp" | "deepspeed", ...)
    checkpoint_config dict(by_epoch, interval, max_keep);  log_config dict(interval, tensorboard, progress_bar)

Crash safety: checkpoints are directories written atomically (``utils.io.atomic_path``) holding
weights, config, meta and ``training_state.pt`` (optimiser, schedule, every rank's RNG states,
data position). The epoch's sample order is a pure function of (seed, epoch), so ``resume``
restores everything and skips the batches already consumed: a run killed with SIGKILL and
resumed ends at the same weights as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from minddrive.errors import UserError
from minddrive.models.acceleration import accelerate_for_training
from minddrive.registry import DATASETS, MODELS, OPTIMIZERS, build
from minddrive.train.distributed import (DistInfo, barrier, init_distributed, mean_across_ranks, shutdown_distributed,
                                         wrap_model)
from minddrive.train.logging import LOG_NAME, PLOT_NAME, TrainLogger, plot_loss_curves
from minddrive.train.optim import build_schedule
from minddrive.utils.io import atomic_path, claim_dir, read_pickled, read_safetensors, run_lock
from minddrive.utils.seed import seed_everything

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^iter_(\d{8})$")
LATEST = "latest"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
def train(cfg, work_dir: str | Path | None = None, resume: bool = False, launcher: str = "none",
          overwrite: bool = False) -> Path:
    """Run imitation learning as ``cfg`` says; returns the final checkpoint directory.

    The work dir belongs to one run: a used one is refused unless ``resume`` (or moved aside with
    ``overwrite``), and a lock file stops a second run writing into it at the same time.
    """
    info = init_distributed(launcher)
    work_dir = Path(work_dir or cfg.get("work_dir") or "work_dirs/default")
    resume = bool(resume or cfg.get("resume", False))
    if not info.is_main:
        return _train(cfg, work_dir, resume, launcher, info)
    claim_dir(work_dir, "train", overwrite=overwrite, resume=resume)
    with run_lock(work_dir, "training"):
        return _train(cfg, work_dir, resume, launcher, info)


def _train(cfg, work_dir: Path, resume: bool, launcher: str, info: DistInfo) -> Path:
    tcfg = dict(cfg.get("train_cfg") or {})
    seed = int(cfg.get("seed", 0))
    batch_size = int(tcfg.get("batch_size", 1))
    accumulate = int(tcfg.get("accumulate", 1))
    seed_everything(seed, deterministic=bool(cfg.get("deterministic", False)))

    # Model: built identically on every rank, then only the configured parts train.
    model = build(cfg.model, MODELS, where="model")
    if cfg.get("trainable") is not None:
        model.set_trainable(list(cfg.trainable))
    ckpt_root = work_dir / CHECKPOINT_DIR
    latest = find_latest_checkpoint(ckpt_root) if resume else None
    if cfg.get("load_from") and latest is None:  # a resumed run already holds newer weights
        load_weights(model, resolve_checkpoint(cfg.load_from, where="load_from"))
    model.to(info.device)
    model.train()
    accelerated = accelerate_for_training(model, tcfg, info.device, cfg.get("strategy"))

    dataset = build(dataset_cfg(cfg, "train"), DATASETS, where="data.train")
    sampler = ResumableBatchSampler(len(dataset), batch_size, seed, info.rank, info.world_size)
    iters_per_epoch = len(sampler) // accumulate
    if iters_per_epoch == 0:
        raise UserError(f"data.train: {len(dataset)} samples give no full step of batch_size={batch_size} x "
                        f"accumulate={accumulate} x {info.world_size} ranks")
    total_iters = int(tcfg.get("max_iters") or int(tcfg.get("max_epochs", 1)) * iters_per_epoch)

    optim_cfg = dict(cfg.get("optimizer") or dict(type="AdamW", lr=1e-4))
    engine = wrap_model(model, lambda module: build(optim_cfg, OPTIMIZERS, where="optimizer", model=module), info,
                        cfg.get("strategy"), tcfg.get("grad_clip"), accumulate, batch_size)
    engine.cuda_graphed = accelerated.cuda_graphed  # accumulation copies graph-owned gradients out (Engine.backward)
    schedule = build_schedule(engine.optimizer, total_iters, cfg.get("param_scheduler"))

    iteration = 0
    if latest is not None:
        iteration = restore_training_state(latest, model, engine.optimizer, schedule, info)
    if info.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.dump(str(work_dir / "config.py"))

    log_cfg = dict(cfg.get("log_config") or {})
    log_interval = int(log_cfg.get("interval", 10))
    ckpt_cfg = dict(cfg.get("checkpoint_config") or {})
    ckpt_every = int(ckpt_cfg.get("interval", 1)) * (iters_per_epoch if ckpt_cfg.get("by_epoch", True) else 1)
    logger = TrainLogger(work_dir, info.is_main, total_iters, iteration,
                         tensorboard=log_cfg.get("tensorboard", True), progress=log_cfg.get("progress_bar", True))
    if latest is not None:
        logger.message(f"resumed from {latest} at iteration {iteration}")
    for note in accelerated.notes:
        logger.message(note)
    logger.message(f"training {total_iters} iterations ({iters_per_epoch}/epoch, batch {batch_size} x "
                   f"accumulate {accumulate} x {info.world_size} ranks), starting at {iteration}")
    autocast = autocast_context(tcfg.get("precision", "bf16"), info.device)
    collate = collate_fn_for(dataset)

    epoch, skip = divmod(iteration, iters_per_epoch)
    window = LogWindow()
    while iteration < total_iters:
        sampler.set_epoch(epoch, skip_batches=skip * accumulate)
        if hasattr(dataset, "set_epoch"):  # per-(seed, epoch, index) augmentation and QA sampling
            dataset.set_epoch(epoch)
        skip = 0
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                            num_workers=int(tcfg.get("num_workers", 0)), worker_init_fn=_seed_worker,
                            generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)),
                            pin_memory=info.device.type == "cuda")
        micro = 0
        for batch in loader:
            batch = to_device(batch, info.device)
            accumulating = micro < accumulate - 1
            with engine.no_sync(accumulating=accumulating):
                with autocast():
                    losses = engine(batch)
                    loss = total_loss(losses)
                engine.backward(loss, accumulating=accumulating)
            window.add(losses, loss, batch_len(batch))
            micro += 1
            if micro < accumulate:
                continue
            micro = 0
            grad_norm = engine.step()
            schedule.step()
            iteration += 1
            window.grad_norm = grad_norm
            logger.advance()

            if iteration % log_interval == 0 or iteration == total_iters:
                scalars = mean_across_ranks(window.means(), info.device)
                scalars.update(lr=schedule.get_last_lr()[0], epoch=iteration / iters_per_epoch,
                               samples_per_s=window.samples_per_s() * info.world_size, peak_mem_mb=peak_memory_mb(info.device))
                logger.log(iteration, scalars)
                window = LogWindow()
            if iteration % ckpt_every == 0 or iteration == total_iters:
                save_checkpoint(ckpt_root, iteration, model, engine.optimizer, schedule, cfg, info,
                                data_position=dict(epoch=iteration // iters_per_epoch,
                                                   batch=(iteration % iters_per_epoch) * accumulate),
                                max_keep=int(ckpt_cfg.get("max_keep", 3)))
            if iteration >= total_iters:
                break
        epoch += 1

    final = ckpt_root / f"iter_{total_iters:08d}"
    if info.is_main:
        logger.close()
        plot_loss_curves(work_dir / LOG_NAME, work_dir / PLOT_NAME)
    if launcher != "none":
        shutdown_distributed()
    return final


# ----------------------------------------------------------------------------------------------
# Data order: a pure function of (seed, epoch), resumable mid-epoch
# ----------------------------------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches of this rank's share of the epoch order, from ``skip_batches`` on.

    The permutation depends only on (seed, epoch); ranks take interleaved slices of it, and
    the tail that does not fill a batch on every rank is dropped, so all ranks step together.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def __len__(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(
                epoch_seed(self.seed, self.epoch))).tolist()
        else:
            order = list(range(self.num_samples))
        mine = order[self.rank::self.world_size][:len(self) * self.batch_size]
        for start in range(self.skip_batches * self.batch_size, len(mine), self.batch_size):
            yield mine[start:start + self.batch_size]


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; numpy and random follow it.
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def dataset_cfg(cfg, split: str) -> dict:
    """The dataset config of ``split``: ``data[split]`` (mmcv style) or ``{split}_dataloader.dataset``."""
    data = cfg.get("data") or {}
    if split in data:
        return data[split]
    loader = cfg.get(f"{split}_dataloader") or {}
    if "dataset" in loader:
        return loader["dataset"]
    raise UserError(f"{getattr(cfg, 'filename', 'config')}: missing key 'data.{split}' (the {split} dataset config)")


def collate_fn_for(dataset):
    """The dataset's own collate (``dataset.collate``, which knows its pad id), else torch's default."""
    own = getattr(dataset, "collate", None)
    return own if callable(own) else torch.utils.data.default_collate


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_len(batch: Any) -> int:
    for value in (batch.values() if isinstance(batch, dict) else [batch]):
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


# ----------------------------------------------------------------------------------------------
# Losses, precision, logging window
# ----------------------------------------------------------------------------------------------
def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """``losses["loss"]`` if the model gives a total, else the sum of every ``loss*`` term (mmdet rule)."""
    if "loss" in losses:
        return losses["loss"]
    terms = [v for k, v in losses.items() if k.startswith("loss")]
    if not terms:
        raise UserError(f"model.forward returned no 'loss*' terms (keys: {sorted(losses)})")
    return torch.stack([t.float() for t in terms]).sum()


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the forward pass's precision context: bf16 autocast on CUDA, plain fp32 on CPU
    (CPU bf16 autocast is slow and changes numerics)."""
    # fp16 would also need loss scaling; bf16 has fp32's range and needs none.
    if precision not in ("bf16", "fp32"):
        raise UserError(f"train_cfg.precision: expected 'bf16' or 'fp32', got {precision!r}")
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class LogWindow:
    """Running means of the loss terms between two log lines, and throughput.

    The terms and the gradient norm stay on the device until a log line reads them (one wait per log line).
    Read every step, the first read made the host wait for the backward to finish before it could queue the
    gradient clipping and the optimiser step, and the GPU idled while it did (~15 ms of host time per H100
    stage-3 step, ``benchmarks/scene_profile.py --parts il_timeline``).
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.samples = 0
        self.start = time.perf_counter()
        self.grad_norm: torch.Tensor | float = float("nan")

    def add(self, losses: dict[str, torch.Tensor], loss: torch.Tensor, n: int) -> None:
        terms = {k: v for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}
        terms["loss"] = loss
        for k, v in terms.items():
            value = v.detach().float().reshape(())
            # A copy on first sight: a float32 scalar would otherwise be the loss tensor itself, which a later
            # step may overwrite in place (outputs of CUDA-graphed regions are replayed into the same memory).
            self.sums[k] = self.sums[k] + value if k in self.sums else value.clone()
        self.count += 1
        self.samples += n

    def means(self) -> dict[str, float]:
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys]).tolist() if keys else []
        out = {k: v / max(self.count, 1) for k, v in zip(keys, values)}
        out["grad_norm"] = float(self.grad_norm)
        return out

    def samples_per_s(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def resolve_checkpoint(path: str | Path, where: str = "checkpoint") -> Path:
    """A checkpoint directory from itself, a work dir (its newest checkpoint) or a ``checkpoints/`` folder."""
    path = Path(path)
    if (path / WEIGHTS).is_file():
        return path
    for root in (path / CHECKPOINT_DIR, path):
        if root.is_dir():
            latest = find_latest_checkpoint(root)
            if latest is not None:
                return latest
    raise UserError(f"{where}: {path} is not a checkpoint directory (no {WEIGHTS}) nor a work dir holding one")


def find_latest_checkpoint(root: Path) -> Path | None:
    """The highest-iteration complete checkpoint under ``root`` (atomic writes make every listed one complete)."""
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_NAME.match(p.name))
             and (p / TRAINING_STATE).is_file()]
    return max(found)[1] if found else None


def trainable_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = model.trainable_state_dict() if hasattr(model, "trainable_state_dict") else model.state_dict()
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def load_weights(model: torch.nn.Module, ckpt_dir: Path) -> None:
    """Load a checkpoint's weights (the non-frozen parts) into ``model``.

    Models with ``load_trainable_state_dict`` (MindDrive: it also restores the added token rows and
    checks shapes) use it; others get a non-strict ``load_state_dict`` that still rejects strangers.
    """
    weights = read_safetensors(ckpt_dir / WEIGHTS)
    if hasattr(model, "load_trainable_state_dict"):
        model.load_trainable_state_dict(weights)
        return
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise UserError(f"{ckpt_dir / WEIGHTS}: {len(result.unexpected_keys)} tensors do not belong to this model, "
                        f"e.g. {result.unexpected_keys[0]!r}")


def rng_state() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: Path, iteration: int, model, optimizer, schedule, cfg, info: DistInfo,
                    data_position: dict, max_keep: int = 3) -> Path:
    """Write ``root/iter_{iteration}`` atomically on rank 0, point ``latest`` at it, prune to ``max_keep``."""
    rng_states = [None] * info.world_size
    if dist.is_initialized():
        dist.all_gather_object(rng_states, rng_state())
    else:
        rng_states[0] = rng_state()
    path = root / f"iter_{iteration:08d}"
    if info.is_main:
        meta = dict(stage=cfg.get("stage"), step=iteration, converted=False, world_size=info.world_size,
                    data_position=data_position)
        training_state = dict(iteration=iteration, optimizer=optimizer.state_dict(), schedule=schedule.state_dict(),
                              rng=rng_states, data_position=data_position)
        if hasattr(model, "llm"):  # MindDrive: the model package's writer adds the base-LLM checksum it verifies
            from minddrive.models.checkpoint import save_checkpoint as save_model_checkpoint

            save_model_checkpoint(path, model, cfg, meta, training_state)
        else:
            _write_checkpoint(path, model, cfg, meta, training_state)
        _point_latest(root.parent / LATEST, path)
        _prune(root, max_keep)
    barrier()
    return path


def _write_checkpoint(path: Path, model, cfg, meta: dict, training_state: dict) -> None:
    """The same directory layout (interfaces.py) for models outside ``minddrive.models``."""
    from safetensors.torch import save_file

    with atomic_path(path, replace_dir=True) as tmp:  # iter_N of this work dir's own run
        tmp.mkdir()
        save_file(trainable_weights(model), str(tmp / WEIGHTS))
        cfg.dump(str(tmp / "config.py"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        torch.save(training_state, tmp / TRAINING_STATE)


def _point_latest(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(CHECKPOINT_DIR) / target.name)
    tmp.replace(link)


def _prune(root: Path, max_keep: int) -> None:
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_NAME.match(p.name)))
    for _, old in found[:-max_keep] if max_keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def restore_training_state(ckpt: Path, model, optimizer, schedule, info: DistInfo) -> int:
    """Load weights, optimiser, schedule and this rank's RNG state; returns the iteration to continue from."""
    load_weights(model, ckpt)
    state = read_pickled(ckpt / TRAINING_STATE, "training state", torch_file=True)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    rngs = state["rng"]
    set_rng_state(rngs[info.rank] if info.rank < len(rngs) and rngs[info.rank] is not None else rngs[0])
    return int(state["iteration"])


__all__ = ["train", "ResumableBatchSampler", "resolve_checkpoint", "find_latest_checkpoint", "load_weights",
           "save_checkpoint"]
