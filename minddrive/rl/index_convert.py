"""``minddrive rl-convert-index``: a decoupled rollout index from our layout to upstream's and back.

Ours -> upstream: every step becomes a ``step_*.npz`` (``minddrive.rl.upstream_format``); steps that hold an
observation need the policy the rollouts were collected with, to splice its scene tokens into the decision
prompt (upstream stores that sequence, not the cameras). Upstream -> ours: every step becomes a ``.pt`` step
file holding the sequence instead of an observation; PPO scores such steps from the sequence. Upstream's files
carry no route, checkpoint or return settings: the index records them as unknown.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from minddrive.errors import UserError
from minddrive.rl import upstream_format
from minddrive.rl.decouple import INDEX_VERSION
from minddrive.utils.io import atomic_path, read_pickled

LAYOUTS = ("minddrive", "upstream")


def index_layout(index_path: str | os.PathLike) -> str:
    index = read_pickled(index_path, "dataset index")
    return "upstream" if upstream_format.is_upstream_index(index) else "minddrive"


def to_upstream(index_path: str | os.PathLike, out_dir: str | os.PathLike, policy: Any = None,
                batch_size: int = 16, show_progress: bool = True) -> Path:
    """Our index ``index_path`` -> upstream's layout in ``out_dir``; returns the new index's path."""
    from minddrive.rl.ppo import StepDataset, collate_steps, policy_batch

    dataset = StepDataset(index_path)
    if dataset.upstream_paths is not None:
        raise UserError(f"{index_path}: already in upstream's layout")
    out_dir = Path(out_dir).resolve()
    paths: list[str] = []
    chunks = [list(range(s, min(s + batch_size, len(dataset)))) for s in range(0, len(dataset), batch_size)]
    for chunk in tqdm(chunks, desc="to upstream", unit="batch", disable=not show_progress):
        steps = [dataset.read(i) for i in chunk]
        if "inputs_embeds" in steps[0]:
            sequences = [(s["inputs_embeds"], s["new_input_ids"]) for s in steps]
        else:
            if policy is None:
                raise UserError(f"{index_path}: its steps hold observations; give the config and checkpoint they "
                                "were collected with (--config, --ckpt) to write the decision sequences")
            mb = collate_steps(steps)
            batch = policy_batch(policy, mb)
            sequences = upstream_format.decision_sequences(policy, batch, mb["actions"])
        for i, step, (embeds, ids) in zip(chunk, steps, sequences):
            arrays = upstream_format.step_arrays(
                step["action"], step["reward"], step["ret"], dataset.entries[i].get("episode_start", False),
                step["value"], step["log_probs"], step["advantage"], embeds, ids)
            path = out_dir / f"step_{len(paths):08d}.npz"
            upstream_format.write_step(path, arrays)
            paths.append(str(path))
    return upstream_format.write_index(out_dir, paths)


def to_minddrive(index_path: str | os.PathLike, out_dir: str | os.PathLike, show_progress: bool = True) -> Path:
    """Upstream's index ``index_path`` -> our layout in ``out_dir`` (steps carry the decision sequence)."""
    from minddrive.rl.ppo import StepDataset

    dataset = StepDataset(index_path)
    if dataset.upstream_paths is None:
        raise UserError(f"{index_path}: already in this project's layout")
    out_dir = Path(out_dir)
    entries, t, episode = [], 0, -1
    for i in tqdm(range(len(dataset)), desc="to minddrive", unit="step", disable=not show_progress):
        step = dataset.read(i)
        if step["episode_start"] or episode < 0:
            episode, t = episode + 1, 0
        relative = Path("steps") / "upstream" / f"{i:08d}.pt"
        with atomic_path(out_dir / relative) as tmp:
            torch.save(step, tmp)
        entries.append({"file": str(relative), "route_key": f"upstream_episode_{episode}", "t": t,
                        "action": step["action"], "log_prob": float(step["log_probs"][step["action"]]),
                        "value": step["value"], "reward": step["reward"], "return": step["ret"],
                        "advantage": step["advantage"], "episode_start": step["episode_start"], "done": False})
        t += 1
    for k, entry in enumerate(entries):  # an episode's last step: the next one starts another, or the index ends
        entry["done"] = k + 1 == len(entries) or entries[k + 1]["episode_start"]
    index = dict(version=INDEX_VERSION, run=dict(config_fingerprint=None, ckpt=None, ckpt_fingerprint=None),
                 gamma=None, gae_lambda=None, sources=[str(index_path)], num_episodes=episode + 1,
                 mean_return=float("nan"), steps=entries)
    path = out_dir / upstream_format.INDEX_NAME
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(index, handle)
    return path


def convert(index_path: str | os.PathLike, out_dir: str | os.PathLike, to: str, policy: Any = None,
            show_progress: bool = True) -> Path:
    if to not in LAYOUTS:
        raise UserError(f"--to {to}: expected one of {', '.join(LAYOUTS)}")
    if Path(out_dir).resolve() == Path(index_path).resolve().parent:
        raise UserError(f"--out {out_dir}: give another folder than the source index's")
    if to == "upstream":
        return to_upstream(index_path, out_dir, policy, show_progress=show_progress)
    return to_minddrive(index_path, out_dir, show_progress=show_progress)


def decouple_upstream(rollout_dirs: list, out_dir: str | os.PathLike, policy: Any, **decouple_kwargs) -> Path:
    """``decouple --layout upstream``: our decoupling (returns per episode), written in upstream's layout."""
    from minddrive.rl.decouple import decouple

    staging = Path(out_dir) / ".minddrive_layout"
    try:
        decouple(rollout_dirs, staging, **decouple_kwargs)
        return to_upstream(staging / upstream_format.INDEX_NAME, out_dir, policy,
                           show_progress=decouple_kwargs.get("show_progress", True))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

