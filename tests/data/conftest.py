"""Fixtures of the data-pipeline tests: the hand-made Bench2Drive clips and an index built from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minddrive.data.infos import build_info_index, load_info_index
from minddrive.data.tokenizer import build_tiny_tokenizer

TRAIN_CLIP = "v1/HardBreakRoute_Town01_Route30_Weather3"
VAL_CLIP = "v1/ParkingExit_Town12_Route922_Weather12"


@pytest.fixture(scope="session")
def b2d_root(fixtures_dir: Path) -> Path:
    root = fixtures_dir / "b2d_clip"
    if not (root / TRAIN_CLIP / "anno").is_dir():
        pytest.fail(f"{root}: fixture missing; run python tests/fixtures/make_b2d_clip.py")
    return root


@pytest.fixture(scope="session")
def b2d_index(b2d_root: Path, tmp_path_factory) -> Path:
    """Info index of the fixture clips (train: 16 frames, VQA for frames 0-1, Town01 HD map; val: 6 frames)."""
    out = tmp_path_factory.mktemp("infos")
    build_info_index(b2d_root, b2d_root / "split.json", out, vqa_root=str(b2d_root / "vqa"), workers=0,
                     progress=False, log=lambda *_: None, map_root=str(b2d_root / "maps"))
    return out


@pytest.fixture(scope="session")
def train_infos(b2d_index: Path) -> list[dict]:
    return load_info_index(b2d_index / "b2d_infos_train.pkl")[0]


@pytest.fixture(scope="session")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture()
def b2d_copy(b2d_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the fixture clips (for corruption tests)."""
    dst = tmp_path / "b2d"
    shutil.copytree(b2d_root, dst)
    return dst
