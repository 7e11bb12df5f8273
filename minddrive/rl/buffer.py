"""Rollout buffers: one file per finished episode, named by its route key, written atomically.

An episode file is the unit of idempotency: a route is done exactly when its file exists, so a
worker killed mid-episode leaves nothing behind and its route is driven again, and a route driven
twice (a lease expired on a slow but live worker) overwrites the same file with an equivalent one.

File ``<dir>/episodes/<route key>.pt`` (``torch.save`` of plain Python / numpy):
    meta      dict   route key, seed, options, attempt, run fingerprint (config + checkpoint), record
    obs       list[dict]  per decision: the observation given to ``policy.preprocess``; camera images are
                          stored as lossless PNG (``pack_obs``), so PPO recomputes exactly what the policy saw
    memory    list   per decision: the policy's temporal memory before it (None if it keeps none)
    actions   int64   (T,)    chosen speed meta-action
    log_probs float32 (T, 7)  rollout-time log-probabilities of all 7 speed meta-actions
    values    float32 (T,)    V(s_t)
    rewards   float32 (T,)    reward summed over the ticks the decision was in force
    episode_starts bool (T,)  True at t = 0
    dones     bool    (T,)    True at the last decision
    terminated bool   the episode truly ended (no bootstrap); last_value float V(s_T) otherwise
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minddrive.errors import UserError
from minddrive.utils.io import atomic_path

EPISODE_DIR = "episodes"
BUFFER_VERSION = 1


def episode_path(out_dir: str | Path, route_key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", route_key)
    return Path(out_dir) / EPISODE_DIR / f"{safe}.pt"


def fingerprint(obj: Any) -> str:
    """Short stable hash of JSON-able data (config dicts, checkpoint metadata)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_fingerprint(ckpt: str | Path | None) -> str:
    """Identify a checkpoint by its content (weights, config, meta; not its path or the optimiser state)."""
    from minddrive.utils.io import hash_files, hash_tree

    if ckpt is None:
        return "none"
    path = Path(ckpt)
    if not path.exists():
        raise UserError(f"--ckpt {ckpt}: checkpoint not found")
    return hash_tree(path, skip=("training_state.pt",)) if path.is_dir() else hash_files([path])


_PNG = "__png__"


def pack_obs(obs: dict) -> dict:
    """Camera images (uint8 (N, H, W, 3)) -> lossless PNG bytes; rendered frames shrink ~10-30x."""
    import cv2

    packed = {}
    for key, value in obs.items():
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 4 and value.shape[-1] == 3:
            packed[key] = {_PNG: [cv2.imencode(".png", img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
                                  for img in value]}
        else:
            packed[key] = value
    return packed


def unpack_obs(obs: dict, images: bool = True) -> dict:
    """Inverse of :func:`pack_obs` (bit-exact); ``images=False`` leaves the PNG-packed camera images out
    instead of decoding them (what a PPO epoch wants once a step's scene tokens are cached)."""
    import cv2

    out = {}
    for key, value in obs.items():
        if not (isinstance(value, dict) and _PNG in value):
            out[key] = value
        elif images:
            out[key] = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
                                 for b in value[_PNG]])
    return out


def write_episode(out_dir: str | Path, meta: dict, trace: Any) -> Path:
    """Write one episode (an :class:`~minddrive.rollout.driver.EpisodeTrace`) atomically; returns its path."""
    steps = len(trace)
    dones = np.zeros(steps, dtype=bool)
    starts = np.zeros(steps, dtype=bool)
    if steps:
        dones[-1], starts[0] = True, True
    payload = dict(
        version=BUFFER_VERSION, meta=dict(meta, steps=steps, episode_return=trace.episode_return),
        obs=[pack_obs(o) for o in trace.obs], memory=list(trace.memory),
        actions=np.asarray(trace.actions, dtype=np.int64),
        log_probs=np.asarray(trace.log_probs, dtype=np.float32).reshape(steps, -1 if steps else 0),
        values=np.asarray(trace.values, dtype=np.float32),
        rewards=np.asarray(trace.rewards, dtype=np.float32),
        episode_starts=starts, dones=dones, terminated=bool(trace.terminated), last_value=float(trace.last_value))
    path = episode_path(out_dir, meta["route_key"])
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_episode(path: str | Path) -> dict:
    # Buffers hold numpy arrays and dicts we wrote ourselves: full unpickling is needed and trusted.
    try:
        episode = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign bytes: torch/pickle raise many types
        raise UserError(f"{path}: unreadable episode buffer ({type(exc).__name__}); re-collect that route") from None
    if not isinstance(episode, dict) or "meta" not in episode or "actions" not in episode:
        raise UserError(f"{path}: not an episode buffer of 'minddrive collect' (no meta/actions)")
    return episode


def list_episodes(out_dir: str | Path) -> list[Path]:
    return sorted((Path(out_dir) / EPISODE_DIR).glob("*.pt"))
