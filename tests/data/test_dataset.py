"""Dataset + collate: the batch contract of minddrive/interfaces.py, padding, and seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minddrive.constants import EGO_STATE_DIM, NUM_PATH_POINTS, SPEED_TOKENS
from minddrive.data import build_dataloader, collate_batch, set_epoch
from minddrive.data import prompts
from minddrive.data.vqa import IGNORE_INDEX
from minddrive.errors import UserError
from minddrive.registry import DATASETS, build
from minddrive.constants import NUM_ROUTE_POINTS

INPUT = (64, 48)  # W, H
PIPELINE = [dict(type="LoadMultiViewImages"), dict(type="ResizeCropImages", size=INPUT),
            dict(type="PhotoMetricDistortion"), dict(type="PackImages")]


def dataset_cfg(b2d_index, b2d_root, stage=2, **kw):
    return dict(type="Bench2DriveDataset", ann_file=str(b2d_index / "b2d_infos_train.pkl"), data_root=str(b2d_root),
                vqa_root=str(b2d_root / "vqa"), stage=stage, pipeline=PIPELINE, tokenizer="tiny", **kw)


def test_batch_follows_the_contract(b2d_index, b2d_root, tokenizer):
    loader = build_dataloader(dataset_cfg(b2d_index, b2d_root), tokenizer, batch_size=3, workers=0, seed=0,
                              shuffle=False)
    batch = next(iter(loader))
    expected = {
        "img": ((3, 6, 3, INPUT[1], INPUT[0]), torch.float32), "cam_intrinsic": ((3, 6, 3, 3), torch.float32),
        "cam2ego": ((3, 6, 4, 4), torch.float32), "lidar2img": ((3, 6, 4, 4), torch.float32),
        "ego_state": ((3, EGO_STATE_DIM), torch.float32), "ego_history": ((3, 4, 2), torch.float32),
        "command": ((3,), torch.int64), "target_point": ((3, 2), torch.float32),
        "route": ((3, NUM_ROUTE_POINTS, 2), torch.float32), "ego_fut_traj": ((3, 6, 2), torch.float32),
        "ego_fut_mask": ((3, 6), torch.float32), "path_points": ((3, NUM_PATH_POINTS, 2), torch.float32),
        "path_mask": ((3, NUM_PATH_POINTS), torch.float32), "speed_action": ((3,), torch.int64),
        "path_action": ((3,), torch.int64), "agent_boxes": ((3, 2, 6, 5), torch.float32),
        "agent_mask": ((3, 2, 6), torch.float32), "map_boundaries": ((3, 8, NUM_PATH_POINTS, 2), torch.float32),
        "map_mask": ((3, 8, NUM_PATH_POINTS), torch.float32), "has_planning": ((3,), torch.bool),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    length = batch["input_ids"].shape[1]
    for key in ("input_ids", "attention_mask", "labels"):
        assert batch[key].shape == (3, length) and batch[key].dtype == torch.int64
    assert [m["frame"] for m in batch["meta"]] == [0, 1, 2]
    np.testing.assert_allclose(batch["ego_fut_traj"][0, 0].numpy(), [1.125, 0.1], atol=1e-5)
    assert batch["speed_action"].tolist() == [4, 3, 3] and batch["has_planning"].all()
    assert 0 <= batch["img"].min() and batch["img"].max() <= 255 and batch["img"].max() > 100  # 0..255 RGB
    # Principal point follows the pixels: 32x18 stored -> 85x48 (cover 64x48) -> centre crop from x=10.
    assert batch["cam_intrinsic"][0, 0, 0, 2].item() == pytest.approx(16 * 85 / 32 - 10)
    assert batch["cam_intrinsic"][0, 0, 1, 2].item() == pytest.approx(9 * 48 / 18)
    # Speed token of the decision answer is trained at the position the policy scores.
    prefix = tokenizer(prompts.decision_prompt(0), add_special_tokens=False)["input_ids"]
    assert batch["input_ids"][0, len(prefix)].item() == tokenizer.convert_tokens_to_ids(SPEED_TOKENS[4])
    assert batch["labels"][0, len(prefix)].item() == batch["input_ids"][0, len(prefix)].item()


def test_collate_pads_right_with_pad_id_and_ignore_labels():
    def sample(n, agents):
        return dict(input_ids=np.arange(1, n + 1), labels=np.full(n, 7), agent_boxes=np.ones((agents, 6, 5), np.float32),
                    agent_mask=np.ones((agents, 6), np.float32), map_boundaries=np.zeros((0, 10, 2), np.float32),
                    map_mask=np.zeros((0, 10), np.float32), command=np.int64(2), has_planning=True, meta={"i": n})
    batch = collate_batch([sample(3, 0), sample(5, 2)], pad_id=99)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 99, 99], [1, 2, 3, 4, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[7, 7, 7, IGNORE_INDEX, IGNORE_INDEX], [7] * 5]
    assert batch["agent_boxes"].shape == (2, 2, 6, 5) and batch["agent_mask"].sum(dim=(1, 2)).tolist() == [0, 12]
    assert batch["map_boundaries"].shape == (2, 1, 10, 2) and batch["map_mask"].sum() == 0
    assert batch["command"].tolist() == [2, 2] and batch["meta"] == [{"i": 3}, {"i": 5}]


def test_loader_is_deterministic_with_a_seed(b2d_index, b2d_root, tokenizer):
    def epoch_batches(seed, epoch=0):
        loader = build_dataloader(dataset_cfg(b2d_index, b2d_root, stage=3), tokenizer, batch_size=4, workers=0,
                                  seed=seed, shuffle=True)
        set_epoch(loader, epoch)
        return list(loader)

    a, b, c = epoch_batches(0), epoch_batches(0), epoch_batches(1)
    frames = lambda batches: [m["frame"] for batch in batches for m in batch["meta"]]
    assert frames(a) == frames(b) and sorted(frames(a)) == list(range(16))
    assert frames(a) != frames(c)
    for x, y in zip(a, b):
        assert torch.equal(x["img"], y["img"]) and torch.equal(x["input_ids"], y["input_ids"])
    assert frames(epoch_batches(0, epoch=1)) != frames(a)


def test_worker_processes_give_the_same_batches(b2d_index, b2d_root, tokenizer):
    cfg = dataset_cfg(b2d_index, b2d_root, max_samples=6)
    serial = list(build_dataloader(cfg, tokenizer, batch_size=3, workers=0, seed=3, shuffle=True))
    parallel = list(build_dataloader(cfg, tokenizer, batch_size=3, workers=2, seed=3, shuffle=True))
    for x, y in zip(serial, parallel):
        assert torch.equal(x["img"], y["img"]) and torch.equal(x["labels"], y["labels"])


def test_stage1_uses_vqa_frames_only(b2d_index, b2d_root):
    dataset = build(dataset_cfg(b2d_index, b2d_root, stage=1), DATASETS, where="data.train")
    assert len(dataset) == 2  # frames 0 and 1 have Chat-B2D files
    sample = dataset[0]
    text = dataset.tokenizer.decode(sample["input_ids"])
    assert prompts.SCENE_PREFIX in text and "The car should be" not in text and not sample["has_planning"]
    assert "<waypoint_ego>" not in text


def test_config_errors_name_the_key(b2d_index, b2d_root, tmp_path):
    with pytest.raises(UserError, match="dataset.stage"):
        build(dataset_cfg(b2d_index, b2d_root, stage=4), DATASETS, where="data.train")
    with pytest.raises(UserError, match=r"pipeline\[0\]\.type: unknown transform type 'Nope'"):
        cfg = dataset_cfg(b2d_index, b2d_root)
        cfg["pipeline"] = [dict(type="Nope")]
        build(cfg, DATASETS, where="data.train")
    with pytest.raises(UserError, match="info index not found"):
        build(dict(dataset_cfg(b2d_index, b2d_root), ann_file=str(tmp_path / "x.pkl")), DATASETS, where="data.train")


def test_tokenizer_forms_match_the_model_config(tokenizer):
    from minddrive.data.dataset import resolve_tokenizer

    assert resolve_tokenizer(dict(type="tiny", vocab_size=512)).get_vocab() == tokenizer.get_vocab()
    assert resolve_tokenizer("tiny").get_vocab() == tokenizer.get_vocab()
    assert len(resolve_tokenizer(dict(type="tiny", vocab_size=300))) < len(tokenizer)
    with pytest.raises(UserError, match="dataset.tokenizer"):
        resolve_tokenizer(dict(type="sentencepiece"))
    with pytest.raises(UserError, match="tokenizer directory not found"):
        resolve_tokenizer(dict(type="pretrained", path="ckpts/does-not-exist"))
