"""Samples -> padded training batches (``minddrive.interfaces``) and the seeded data loader."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from minddrive.data.vqa import IGNORE_INDEX

# Variable-size keys padded (with their masks) to the largest in the batch, at least 1 so shapes stay valid.
PADDED_PAIRS = (("agent_boxes", "agent_mask"), ("map_boundaries", "map_mask"))


def _pad_leading(arrays: list[np.ndarray], fill: float = 0.0) -> np.ndarray:
    """Stack arrays that differ in their leading dims (padding with ``fill`` at the end of each dim)."""
    shape = [max(1, *(a.shape[d] for a in arrays)) for d in range(arrays[0].ndim)]
    out = np.full((len(arrays), *shape), fill, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[(i, *(slice(0, s) for s in a.shape))] = a
    return out


def collate_batch(samples: list[dict], pad_id: int) -> dict[str, Any]:
    """Stack samples; right-pad ``input_ids`` with ``pad_id`` (``labels`` with -100, ``attention_mask`` 0)."""
    if not samples:
        raise ValueError("collate_batch: empty batch")
    batch: dict[str, Any] = {}
    lengths = [len(s["input_ids"]) for s in samples]
    length = max(lengths)
    input_ids = torch.full((len(samples), length), int(pad_id), dtype=torch.int64)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.int64)
    attention = torch.zeros((len(samples), length), dtype=torch.int64)
    for i, (s, n) in enumerate(zip(samples, lengths)):
        input_ids[i, :n] = torch.as_tensor(s["input_ids"])
        labels[i, :n] = torch.as_tensor(s["labels"])
        attention[i, :n] = 1
    batch.update(input_ids=input_ids, labels=labels, attention_mask=attention)

    padded = {key for pair in PADDED_PAIRS for key in pair}
    for values_key, mask_key in PADDED_PAIRS:
        if values_key in samples[0]:
            batch[values_key] = torch.from_numpy(_pad_leading([s[values_key] for s in samples]))
            mask = _pad_leading([s[mask_key] for s in samples])
            batch[mask_key] = torch.from_numpy(mask[(slice(None), *(slice(0, n) for n in batch[values_key].shape[1:-1]))])

    for key, value in samples[0].items():
        if key in batch or key in padded or key == "meta":
            continue
        if isinstance(value, (bool, np.bool_)):
            batch[key] = torch.tensor([bool(s[key]) for s in samples], dtype=torch.bool)
        else:
            batch[key] = torch.from_numpy(np.stack([np.asarray(s[key]) for s in samples]))
    batch["meta"] = [s.get("meta", {}) for s in samples]
    return batch


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader generator; keep numpy/random in step for any library code.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(dataset_cfg: dict | torch.utils.data.Dataset, tokenizer=None, batch_size: int = 1,
                     workers: int = 0, seed: int = 0, shuffle: bool = True, distributed: bool | None = None,
                     drop_last: bool = False) -> DataLoader:
    """A loader of contract batches; the sample order is a function of ``seed`` (and the epoch, see ``set_epoch``).

    ``distributed=None`` uses a ``DistributedSampler`` exactly when ``torch.distributed`` is initialised.
    """
    from minddrive.registry import DATASETS, build

    if isinstance(dataset_cfg, torch.utils.data.Dataset):
        dataset = dataset_cfg
    else:
        cfg = dict(dataset_cfg)
        if tokenizer is not None:  # the caller's (the model's) tokenizer wins over the config's
            cfg["tokenizer"] = tokenizer
        dataset = build(cfg, DATASETS, where="data.train")
    if hasattr(dataset, "seed"):
        dataset.seed = int(seed)
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    pad_id = getattr(dataset, "tokenizer", tokenizer).pad_token_id
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                      collate_fn=_Collate(pad_id),
                      worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


class _Collate:
    """Picklable collate with a fixed pad id (lambdas do not survive spawn-started workers)."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, samples: list[dict]) -> dict[str, Any]:
        return collate_batch(samples, self.pad_id)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Advance the sampler and the dataset's augmentation seed to ``epoch`` (call before iterating)."""
    for owner in (loader.sampler, loader.dataset):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)
    if isinstance(loader.sampler, RandomSampler) and loader.sampler.generator is not None:
        seed = getattr(loader.dataset, "seed", 0)
        loader.sampler.generator.manual_seed(seed * 1000003 + epoch)
