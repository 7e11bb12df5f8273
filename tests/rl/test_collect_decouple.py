"""Collection with supervised subprocess workers (one SIGKILLed mid-episode), then decoupling."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.buffer import list_episodes, read_episode
from minddrive.rl.collector import collect
from minddrive.rl.decouple import decouple, load_index
from minddrive.rl.gae import compute_gae

HERE = Path(__file__).resolve().parent

CONFIG = """
custom_imports = dict(imports=["rl_fakes"], allow_failed_imports=False)
seed = 0
model = dict(type="CorridorPolicy", hidden=16)
env = dict(type="CorridorEnv", tick_sleep={tick_sleep})
reward = dict(type="SparseRouteReward")
rollout = dict(num_workers=2, envs_per_worker=2, decision_interval=5, lease_s=60.0,
               controller="rl_fakes.SpeedController", max_restarts=3)
rl_routes = dict(type="seeds", count={count}, seed_start=1000000, scenarios=["SignalizedJunctionLeftTurn"])
rl = dict(gamma=0.99, gae_lambda=0.95)
ppo = dict(epochs=4, batch_size=32, learning_rate=0.01)
rl_eval = dict(suite="sim-b2d-mini", limit=4, num_envs=2)
"""


def write_config(tmp_path: Path, monkeypatch, count: int = 8, tick_sleep: float = 0.0, name: str = "cfg.py"):
    monkeypatch.setenv("PYTHONPATH", f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    path = tmp_path / name
    path.write_text(CONFIG.format(count=count, tick_sleep=tick_sleep))
    return load_config(path)


def test_sigkilled_worker_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    cfg = write_config(tmp_path, monkeypatch, count=6, tick_sleep=0.01)
    cfg.rollout.num_workers = 1
    out = tmp_path / "rollouts"
    result = {}
    thread = threading.Thread(target=lambda: result.update(collect(cfg, None, out, show_progress=False)))
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if not (out / "queue.sqlite").exists():
            continue
        with sqlite3.connect(out / "queue.sqlite", timeout=30) as db:
            rows = db.execute("SELECT key, pid FROM routes WHERE state = 'claimed'").fetchall()
        for key, pid in rows:
            if pid and not (out / "episodes" / f"{key}.pt").exists():
                os.kill(pid, signal.SIGKILL)   # mid-episode: its episode file is not written yet
                killed = key
                break
    thread.join(timeout=120)
    assert killed is not None and not thread.is_alive()
    assert result["episodes"] == 6 and result["unfinished"] == 0 and result["restarts"] >= 1

    episodes = list_episodes(out)
    keys = [read_episode(p)["meta"]["route_key"] for p in episodes]
    assert sorted(keys) == sorted(f"seed{1000000 + k}" for k in range(6))   # none lost, none twice
    with sqlite3.connect(out / "queue.sqlite") as db:
        attempts = dict(db.execute("SELECT key, attempts FROM routes").fetchall())
    assert attempts[killed] == 2                                              # driven again after the kill
    killed_episode = read_episode(out / "episodes" / f"{killed}.pt")
    assert killed_episode["meta"]["attempt"] == 2 and killed_episode["dones"][-1]

    # a re-run of the finished collection is a no-op
    again = collect(cfg, None, out, show_progress=False)
    assert again["episodes"] == 6 and len(list_episodes(out)) == 6


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("collected")
    mp = pytest.MonkeyPatch()
    cfg = write_config(tmp_path, mp, count=6)
    collect(cfg, None, tmp_path / "rollouts", num_workers=0, show_progress=False)
    yield cfg, tmp_path
    mp.undo()


def test_episode_buffers_hold_what_ppo_needs(collected):
    _, tmp_path = collected
    episode = read_episode(list_episodes(tmp_path / "rollouts")[0])
    steps = len(episode["actions"])
    assert steps > 3 and episode["log_probs"].shape == (steps, 7)
    np.testing.assert_allclose(np.exp(episode["log_probs"]).sum(1), 1.0, rtol=1e-5)
    assert episode["episode_starts"][0] and episode["episode_starts"].sum() == 1 and episode["dones"][-1]
    assert episode["rewards"][-1] in (-1.0, 1.0) and episode["terminated"]
    assert "features" in episode["obs"][0] and len(episode["obs"]) == steps


def test_decouple_writes_steps_with_gae_and_is_rerunnable(collected):
    cfg, tmp_path = collected
    index = decouple([tmp_path / "rollouts"], tmp_path / "dec", gamma=0.99, gae_lambda=0.95, show_progress=False)
    episodes = [read_episode(p) for p in list_episodes(tmp_path / "rollouts")]
    assert len(index["steps"]) == sum(len(e["actions"]) for e in episodes) and index["num_episodes"] == 6
    first = episodes[0]
    adv, ret = compute_gae(first["rewards"], first["values"], True, 0.0, 0.99, 0.95)
    entries = [s for s in index["steps"] if s["route_key"] == first["meta"]["route_key"]]
    np.testing.assert_allclose([s["advantage"] for s in entries], adv, rtol=1e-5)
    assert (tmp_path / "dec" / entries[0]["file"]).is_file()
    with open(tmp_path / "dec" / "dataset_index.pkl", "rb") as handle:
        assert pickle.load(handle)["steps"] == index["steps"]
    again = decouple([tmp_path / "rollouts"], tmp_path / "dec", gamma=0.99, gae_lambda=0.95, show_progress=False)
    assert again["steps"] == load_index(tmp_path / "dec" / "dataset_index.pkl")["steps"] == index["steps"]


def test_decouple_refuses_rollouts_of_another_checkpoint(collected, tmp_path):
    cfg, root = collected
    other = tmp_path / "other"
    (other / "episodes").mkdir(parents=True)
    run = (root / "rollouts" / "run.json").read_text().replace('"ckpt_fingerprint": "none"', '"ckpt_fingerprint": "abc"')
    (other / "run.json").write_text(run)
    with pytest.raises(UserError, match="different checkpoint"):
        decouple([root / "rollouts", other], tmp_path / "dec", show_progress=False)


def test_camera_images_are_packed_losslessly():
    from minddrive.rl.buffer import pack_obs, unpack_obs

    rng = np.random.default_rng(0)
    images = np.zeros((6, 64, 96, 3), dtype=np.uint8)
    images[:, 20:40] = rng.integers(0, 255, size=(6, 20, 96, 3), dtype=np.uint8)  # noise + flat areas
    obs = dict(images=images, ego_state=np.arange(8, dtype=np.float32))
    packed = pack_obs(obs)
    assert sum(len(b) for b in packed["images"]["__png__"]) < images.nbytes
    restored = unpack_obs(packed)
    assert np.array_equal(restored["images"], images) and restored["images"].dtype == np.uint8
    assert restored["ego_state"] is obs["ego_state"]
    without = unpack_obs(packed, images=False)  # PPO epochs reading steps whose scene tokens are cached
    assert "images" not in without and without["ego_state"] is obs["ego_state"]
