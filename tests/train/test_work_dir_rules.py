"""Training work dirs belong to one run: a second run is refused unless --resume, a lock stops two at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minddrive.errors import UserError
from minddrive.train import train
from minddrive.utils.io import LOCK_FILE, OWNER_FILE
from train_toy_fixtures import toy_config


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def short(work_dir: Path, iters: int, **extra):
    return toy_config(work_dir, train_cfg=dict(max_iters=iters, batch_size=4), **extra)


def test_second_train_into_a_used_work_dir_is_refused_and_changes_nothing(tmp_path):
    first = train(short(tmp_path, 4), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="pass --resume") as info:
        train(short(tmp_path, 2, checkpoint_config=dict(by_epoch=False, interval=1, max_keep=2)), tmp_path)
    assert "\n" not in str(info.value)
    assert snapshot(tmp_path) == before and (tmp_path / "latest").resolve() == first.resolve()


def test_overwrite_moves_the_old_run_aside_and_the_new_final_checkpoint_is_kept(tmp_path):
    work = tmp_path / "work"
    train(short(work, 4), work)
    before = snapshot(work)
    final = train(short(work, 2, checkpoint_config=dict(by_epoch=False, interval=1, max_keep=2)), work, overwrite=True)
    assert final.is_dir() and (work / "latest").resolve() == final.resolve()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("work.old-")]
    assert len(aside) == 1 and snapshot(aside[0]) == before


def test_resume_continues_its_own_run(tmp_path):
    train(short(tmp_path, 2), tmp_path)
    final = train(short(tmp_path, 4), tmp_path, resume=True)
    assert final.name == "iter_00000004" and json.loads((final / "meta.json").read_text())["step"] == 4


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path):
    train(short(tmp_path, 2), tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": __import__("socket").gethostname()}))
        before = snapshot(tmp_path)
        with pytest.raises(UserError, match=f"another training \\(pid {holder.pid}"):
            train(short(tmp_path, 4), tmp_path, resume=True)
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    # its process has ended: the lock is stale and the resumed run takes it over, then releases it
    final = train(short(tmp_path, 4), tmp_path, resume=True)
    assert final.name == "iter_00000004" and not (tmp_path / LOCK_FILE).exists()


def test_a_folder_of_something_else_is_not_a_work_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not written by 'minddrive train'"):
        train(short(tmp_path, 2), tmp_path, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert not (tmp_path / OWNER_FILE).exists()
