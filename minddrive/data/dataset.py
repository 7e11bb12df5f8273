"""The training dataset: info index + images + stage's QA conversation -> one sample of the batch contract.

A sample is a dict of numpy arrays with the keys of ``minddrive.interfaces`` (unbatched), plus ``meta``;
``minddrive.data.collate.collate_batch`` pads and stacks them. Randomness (augmentation, stage-3 QA mix)
comes from a generator seeded by (seed, epoch, index): call ``set_epoch`` each epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from minddrive.data.infos import load_info_index, read_vqa_turns
from minddrive.data.transforms import Compose
from minddrive.data.vqa import MAX_LENGTH, ConversationTokenizer, sample_turns
from minddrive.errors import UserError
from minddrive.registry import DATASETS

# Keys copied from the info record into the sample unchanged.
INFO_ARRAY_KEYS = ("ego_state", "ego_history", "target_point", "route", "ego_fut_traj", "ego_fut_mask", "path_points",
                   "path_mask", "agent_boxes", "agent_mask", "map_boundaries", "map_mask")


def resolve_tokenizer(tokenizer):
    """The tokenizer a dataset config names, in the model's form or a short one.

    ``dict(type="tiny", vocab_size=512)`` / ``"tiny"`` (tests, CPU quick start),
    ``dict(type="pretrained", path=...)`` / a ``save_pretrained`` folder such as ckpts/Qwen2-0.5B,
    ``dict(type="qwen2-offline")`` / ``"qwen2-offline"`` (Qwen2's vocabulary rebuilt from dashscope's ranks),
    or a tokenizer object. Use the same one as ``model.llm.tokenizer``: MindDrive's token ids depend on it.
    """
    from minddrive.data.tokenizer import build_tiny_tokenizer, load_tokenizer

    if isinstance(tokenizer, dict):
        kind = tokenizer.get("type", "pretrained")
        if kind == "tiny":
            return build_tiny_tokenizer(int(tokenizer.get("vocab_size", 512)))
        if kind == "pretrained" and "path" in tokenizer:
            return load_tokenizer(os.fspath(tokenizer["path"]))
        if kind != "qwen2-offline":
            raise UserError(f"dataset.tokenizer: expected type 'tiny', 'pretrained' (with path) or 'qwen2-offline', "
                            f"got {tokenizer!r}")
        tokenizer = kind
    if tokenizer is None or tokenizer == "tiny":
        return build_tiny_tokenizer()
    if tokenizer == "qwen2-offline":
        from minddrive.data.qwen_tokenizer import build_qwen2_tokenizer

        return build_qwen2_tokenizer()
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_tokenizer(os.fspath(tokenizer))
    return tokenizer


@DATASETS.register_module()
class Bench2DriveDataset(torch.utils.data.Dataset):
    """Bench2Drive-layout frames (real clips or the embedded simulator's) with Chat-B2D(-plus) QA.

    Args:
        ann_file: an info index written by ``minddrive prepare-data``.
        pipeline: image transforms (``dict(type=...)`` list, see ``minddrive.data.transforms``).
        stage: 1 (VQA), 2 (planning QA) or 3 (mixed, ``planning_qa_ratio`` planning samples).
        data_root / vqa_root: where the index's relative paths point; default: what the index recorded.
        tokenizer: as ``model.llm.tokenizer`` (see :func:`resolve_tokenizer`).
        max_samples: keep only the first N records (quick runs).
    """

    def __init__(self, ann_file: str, pipeline: list, stage: int = 2, data_root: str | None = None,
                 vqa_root: str | None = None, tokenizer=None, max_length: int = MAX_LENGTH,
                 planning_qa_ratio: float = 0.8, seed: int = 0, max_samples: int | None = None):
        if stage not in (1, 2, 3):
            raise UserError(f"dataset.stage: expected 1, 2 or 3, got {stage!r}")
        infos, metadata = load_info_index(ann_file)
        self.data_root = Path(data_root or metadata["data_root"])
        vqa_root = vqa_root or metadata.get("vqa_root")
        self.vqa_root = Path(vqa_root) if vqa_root else None
        if stage == 1:
            # Stage 1 trains only QA text: frames without a Chat-B2D file have nothing to learn.
            infos = [info for info in infos if info.get("vqa_path")]
            if not infos:
                raise UserError(f"{ann_file}: stage 1 needs Chat-B2D VQA files, but no indexed frame has one "
                                f"(pass --vqa-root to prepare-data)")
        self.infos = infos[:max_samples] if max_samples else infos
        self.stage, self.seed, self.epoch = int(stage), int(seed), 0
        self.planning_qa_ratio = float(planning_qa_ratio)
        self.pipeline = Compose(pipeline)
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.conversations = ConversationTokenizer(self.tokenizer, max_length)

    def __len__(self) -> int:
        return len(self.infos)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def num_truncated(self) -> int:
        """Conversations truncated to ``max_length`` so far (in this process)."""
        return self.conversations.num_truncated

    def __getitem__(self, index: int) -> dict:
        info = self.infos[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        results = dict(image_paths=[self.data_root / p for p in info["image_paths"]],
                       image_size=info["image_size"], cam_intrinsic=info["cam_intrinsic"].copy(),
                       cam2ego=info["cam2ego"].copy(), lidar2img=info["lidar2img"].copy(), rng=rng)
        results = self.pipeline(results)

        vqa_turns = []
        if info.get("vqa_path") and self.vqa_root is not None:
            vqa_turns = read_vqa_turns(self.vqa_root / info["vqa_path"])
        turns, has_planning = sample_turns(self.stage, vqa_turns, info["speed_action"], info["path_action"],
                                           info["command"], rng, self.planning_qa_ratio)
        tokens = self.conversations(turns)

        sample = {key: np.asarray(info[key], dtype=np.float32) for key in INFO_ARRAY_KEYS}
        sample.update(
            img=results["img"], cam_intrinsic=results["cam_intrinsic"].astype(np.float32),
            cam2ego=results["cam2ego"].astype(np.float32), lidar2img=results["lidar2img"].astype(np.float32),
            command=np.int64(info["command"]), speed_action=np.int64(info["speed_action"]),
            path_action=np.int64(info["path_action"]), has_planning=bool(has_planning),
            input_ids=tokens["input_ids"], labels=tokens["labels"],
            meta=dict(clip=info["clip"], frame=info["frame"], image_paths=[str(p) for p in results["image_paths"]],
                      label_source=info.get("label_source"), stage=self.stage),
        )
        return sample

    def collate(self, samples: list[dict]) -> dict:
        from minddrive.data.collate import collate_batch

        return collate_batch(samples, pad_id=self.tokenizer.pad_token_id)
