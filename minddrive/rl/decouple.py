"""Decouple rollout buffers into one file per decision step plus ``dataset_index.pkl``.

PPO samples steps, not episodes, so each step becomes its own file (what a data loader reads in
parallel) and the index carries per-step metadata. Returns and advantages are computed per episode
with GAE here, once, from the rollout-time values.

``dataset_index.pkl``::

    {"version": 1, "run": {config_fingerprint, ckpt, ckpt_fingerprint}, "gamma", "gae_lambda",
     "sources": [rollout dirs], "num_episodes", "mean_return",
     "steps": [{"file": "steps/<route>/000012.pt", "route_key", "t", "action", "log_prob",
                "value", "reward", "return", "advantage", "episode_start", "done"}, ...]}

``out`` is this command's own folder (``utils.io.claim_dir``): its owner record names the
collection run (config and checkpoint content) the steps come from, and a lock stops two
decouples writing into it at once. Re-running the same run is safe: step files are written
atomically and identical names are overwritten with identical content; the index is replaced in
one rename. Buffers from a different config or checkpoint than the rest (or than the run ``out``
holds) are refused; a folder of another command or of nobody too (``overwrite`` moves it aside).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from tqdm import tqdm

from minddrive.errors import UserError
from minddrive.rl.buffer import list_episodes, read_episode, unpack_obs
from minddrive.rl.collector import load_run_meta
from minddrive.rl.gae import compute_gae
from minddrive.rl.settings import ReturnParams
from minddrive.utils.io import atomic_path, claim_dir, read_pickled, run_lock

INDEX_NAME = "dataset_index.pkl"
INDEX_VERSION = 1
_RUN_KEYS = ("config_fingerprint", "ckpt_fingerprint")


def _check_compatible(run: dict, other: dict, where: str) -> None:
    for key in _RUN_KEYS:
        if run.get(key) != other.get(key):
            what = "config" if key == "config_fingerprint" else "checkpoint"
            raise UserError(f"{where}: rollouts of a different {what} ({other.get('ckpt')} vs {run.get('ckpt')}); "
                            "decouple buffers of one collection run at a time")


def load_index(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: dataset index not found")
    index = read_pickled(path, "dataset index")
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or "steps" not in index:
        raise UserError(f"{path}: not a version-{INDEX_VERSION} dataset index")
    return index


def decouple(rollout_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
             gamma: float = ReturnParams.gamma, gae_lambda: float = ReturnParams.gae_lambda,
             show_progress: bool = True, overwrite: bool = False) -> dict:
    """Split every episode buffer of ``rollout_dirs`` into step files under ``out_dir``; returns the index."""
    rollout_dirs = [Path(d) for d in rollout_dirs]
    out_dir = Path(out_dir)
    if not rollout_dirs:
        raise UserError("decouple: give at least one rollout folder")
    run = load_run_meta(rollout_dirs[0])
    for directory in rollout_dirs[1:]:
        _check_compatible(run, load_run_meta(directory), str(directory / "run.json"))
    episodes = [path for directory in rollout_dirs for path in list_episodes(directory)]
    if not episodes:
        raise UserError(f"{rollout_dirs[0]}: no episode buffers (episodes/*.pt); run 'minddrive collect' first")
    claim_dir(out_dir, "decouple", {key: run.get(key) for key in _RUN_KEYS}, overwrite=overwrite)
    with run_lock(out_dir, "decouple"):
        return _decouple(run, rollout_dirs, episodes, out_dir, gamma, gae_lambda, show_progress)


def _decouple(run: dict, rollout_dirs: list[Path], episodes: list[Path], out_dir: Path, gamma: float,
              gae_lambda: float, show_progress: bool) -> dict:
    index_path = out_dir / INDEX_NAME
    if index_path.exists():
        _check_compatible(run, load_index(index_path)["run"], str(index_path))
    steps, returns = [], []
    for path in tqdm(episodes, desc="decouple", unit="ep", disable=not show_progress):
        episode = read_episode(path)
        meta = episode["meta"]
        _check_compatible(run, meta, str(path))
        if len(episode["actions"]) == 0:
            continue
        advantages, value_targets = compute_gae(episode["rewards"], episode["values"], episode["terminated"],
                                                episode["last_value"], gamma=gamma, lam=gae_lambda)
        returns.append(float(np.sum(episode["rewards"])))
        route_dir = Path("steps") / path.stem
        for t in range(len(episode["actions"])):
            step = dict(obs=episode["obs"][t], memory=episode["memory"][t] if episode["memory"] else None,
                        action=int(episode["actions"][t]), log_probs=episode["log_probs"][t],
                        value=float(episode["values"][t]), reward=float(episode["rewards"][t]),
                        ret=float(value_targets[t]), advantage=float(advantages[t]))
            relative = route_dir / f"{t:06d}.pt"
            with atomic_path(out_dir / relative) as tmp:
                torch.save(step, tmp)
            steps.append({"file": str(relative), "route_key": meta["route_key"], "t": t, "action": step["action"],
                          "log_prob": float(episode["log_probs"][t][step["action"]]), "value": step["value"],
                          "reward": step["reward"], "return": step["ret"], "advantage": step["advantage"],
                          "episode_start": bool(episode["episode_starts"][t]), "done": bool(episode["dones"][t])})
    index = dict(version=INDEX_VERSION, run=run, gamma=float(gamma), gae_lambda=float(gae_lambda),
                 sources=[str(d) for d in rollout_dirs], num_episodes=len(returns),
                 mean_return=float(np.mean(returns)) if returns else float("nan"), steps=steps)
    with atomic_path(index_path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(index, handle)
    return index


def read_step(index_path: str | os.PathLike, entry: dict, images: bool = True) -> dict:
    """One step file, observation images decoded (they stay PNG-packed on disk), or left out (``images=False``).
    Steps converted from upstream's layout carry the decision sequence instead of an observation."""
    step = read_pickled(Path(index_path).parent / entry["file"], "step file", torch_file=True)
    if not isinstance(step, dict) or ("obs" not in step and "inputs_embeds" not in step):
        raise UserError(f"{Path(index_path).parent / entry['file']}: not a step file of 'minddrive decouple'")
    if "obs" in step:
        step["obs"] = unpack_obs(step["obs"], images=images)
    return step
