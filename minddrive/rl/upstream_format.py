"""Upstream MindDrive's decoupled rollout layout: ``dataset_index.pkl`` (a list of step paths) + ``step_*.npz``.

Upstream's rollout buffer keeps one row per decision; its decoupler writes each row as one ``.npz`` with

    key               shape   dtype    meaning
    actions           (1, 1)  float32  the sampled speed meta-action (0..6)
    rewards           (1, 1)  float32  the step's reward
    returns           (1, 1)  float32  advantage + value
    episode_starts    (1,)    float32  1.0 at an episode's first step
    values            (1, 1)  float32  V(s) at rollout time
    ref_log_probs     (1, 7)  float32  rollout-time log-probabilities of the 7 speed meta-actions
    advantages        (1, 1)  float32  GAE advantage
    meta_action_info  (1, 1)  object   {"inputs_embeds": torch (1, L, H), "new_input_ids": torch (1, L) int64}

and pickles the list of written paths as ``dataset_index.pkl``. Its PPO re-runs the decision LLM on
``inputs_embeds`` (the decision prompt with the scene tokens spliced in, as embeddings) and reads the 7 speed
logits at position L - 2 and the value at the position just before the speed meta-action token in
``new_input_ids``. (``docs/rl_protocol.md`` gives the upstream files.)

This module writes and reads that layout. Our sequence for a step is the decision prompt (scene spliced in,
padding dropped) followed by the chosen speed token: by causality the extra token changes no earlier hidden
state, so upstream's two read-out positions are exactly the last prompt position where our model scores the
decision and the value, and a policy evaluated on the sequence reproduces its rollout-time numbers.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minddrive.errors import UserError
from minddrive.utils.io import atomic_path

INDEX_NAME = "dataset_index.pkl"
STEP_SHAPES = {"actions": (1, 1), "rewards": (1, 1), "returns": (1, 1), "episode_starts": (1,), "values": (1, 1),
               "ref_log_probs": (1, 7), "advantages": (1, 1), "meta_action_info": (1, 1)}
STEP_KEYS = tuple(STEP_SHAPES)


def is_upstream_index(index: Any) -> bool:
    """Whether an unpickled ``dataset_index.pkl`` is upstream's (a list of step paths)."""
    return isinstance(index, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in index)


def step_arrays(action: int, reward: float, ret: float, episode_start: bool, value: float, log_probs: Any,
                advantage: float, inputs_embeds: torch.Tensor, new_input_ids: torch.Tensor) -> dict[str, np.ndarray]:
    """One step as upstream's buffer row: the keys, shapes and dtypes of :data:`STEP_SHAPES`.
    ``inputs_embeds`` (L, H) and ``new_input_ids`` (L,) are stored with a leading batch axis of 1."""
    log_probs = np.asarray(log_probs, dtype=np.float32).reshape(1, 7)
    info = np.empty((1, 1), dtype=object)
    info[0, 0] = {"inputs_embeds": inputs_embeds.detach().float().cpu().reshape(1, *inputs_embeds.shape[-2:]),
                  "new_input_ids": new_input_ids.detach().long().cpu().reshape(1, -1)}
    scalar = lambda v: np.full((1, 1), v, dtype=np.float32)  # noqa: E731
    return dict(actions=scalar(action), rewards=scalar(reward), returns=scalar(ret),
                episode_starts=np.full((1,), float(bool(episode_start)), dtype=np.float32), values=scalar(value),
                ref_log_probs=log_probs, advantages=scalar(advantage), meta_action_info=info)


def write_step(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    # np.savez appends ".npz" to a name without it: write to a temporary name that has it.
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def write_index(out_dir: str | os.PathLike, step_paths: list[str]) -> Path:
    path = Path(out_dir) / INDEX_NAME
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump([str(p) for p in step_paths], handle)
    return path


def step_paths(index_path: str | os.PathLike, index: list) -> list[Path]:
    """The step files of an upstream index. Upstream stores the paths as its decoupler joined them (relative
    to where it ran, or absolute); a path that does not exist as stored is looked up beside the index."""
    base = Path(index_path).parent
    out = []
    for entry in index:
        path = Path(entry)
        out.append(path if path.exists() else base / path.name)
    return out


def read_step(path: str | os.PathLike) -> dict:
    """One upstream step as PPO reads it (upstream's ``RL_minddrive_Dataset`` takes row 0 of every array)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: step file of the dataset index not found")
    with np.load(path, allow_pickle=True) as data:  # meta_action_info is a pickled dict of tensors
        missing = [k for k in STEP_KEYS if k not in data.files and k != "rewards"]
        if missing:
            raise UserError(f"{path}: not an upstream rollout step (missing {', '.join(missing)})")
        info = data["meta_action_info"][0][0]
        return dict(action=int(data["actions"][0][0]), log_probs=np.asarray(data["ref_log_probs"][0], np.float32),
                    value=float(data["values"][0][0]), ret=float(data["returns"][0][0]),
                    advantage=float(data["advantages"][0][0]),
                    reward=float(data["rewards"][0][0]) if "rewards" in data.files else 0.0,
                    episode_start=bool(data["episode_starts"][0]),
                    inputs_embeds=torch.as_tensor(info["inputs_embeds"][0]).float(),
                    new_input_ids=torch.as_tensor(info["new_input_ids"][0]).long())


# --- sequences: our steps as upstream's (inputs_embeds, new_input_ids), and the policy evaluated on them -----
def decision_sequences(policy: Any, batch: dict, actions: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For a run-time ``batch`` (``policy.preprocess``) and the chosen speed ``actions`` (B,): per row the decision
    prompt's embeddings with the scene spliced in plus the chosen speed token's embedding (L + 1, H), and the
    matching ids (L + 1,), padding dropped: what upstream stores as ``meta_action_info``."""
    from minddrive.models.policy import _eval_mode

    model = policy.model
    with torch.no_grad(), _eval_mode(model):
        scene, _ = model.encode_scene(batch)
        ids, mask = model._table_rows("decision", batch["command"], scene.device)
        embeds, mask, _, new_ids = model.splice_scene(ids, mask, scene, validate=False)
        speed_ids = model.speed_token_ids[actions.to(scene.device).long()]
        speed_embeds = model.llm_embeddings(speed_ids)
    out = []
    for row in range(embeds.shape[0]):
        n = int(mask[row].sum())
        out.append((torch.cat([embeds[row, :n], speed_embeds[row:row + 1].to(embeds.dtype)]).float().cpu(),
                    torch.cat([new_ids[row, :n], speed_ids[row:row + 1]]).long().cpu()))
    return out


def pad_sequences(embeds: list[torch.Tensor], ids: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-padded ``inputs_embeds`` (B, L, H), ``new_input_ids`` (B, L) and ``lengths`` (B,)."""
    lengths = torch.tensor([len(e) for e in embeds])
    width, hidden = int(lengths.max()), embeds[0].shape[-1]
    out_embeds = torch.zeros(len(embeds), width, hidden)
    out_ids = torch.zeros(len(embeds), width, dtype=torch.long)
    for i, (e, t) in enumerate(zip(embeds, ids)):
        out_embeds[i, :len(e)], out_ids[i, :len(t)] = e, t
    return dict(inputs_embeds=out_embeds, new_input_ids=out_ids, lengths=lengths)


def evaluate_sequences(policy: Any, inputs_embeds: torch.Tensor, new_input_ids: torch.Tensor, lengths: torch.Tensor,
                       temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-probs of the 7 speed actions (B, 7), value (B,), entropy (B,)) with gradients, read as upstream's
    PPO reads them: decision expert at position L - 2 of each sequence, value expert + value head at the state
    just before the (last) speed meta-action token."""
    from minddrive.models.policy import _eval_mode

    model = policy.model
    device = policy.device
    embeds = inputs_embeds.to(device)
    ids = new_input_ids.to(device)
    lengths = lengths.to(device)
    b, width = ids.shape
    mask = (torch.arange(width, device=device)[None] < lengths[:, None]).long()
    is_speed = torch.isin(ids, model.speed_token_ids) & mask.bool()
    if not bool(is_speed.any(1).all()):
        raise UserError("inputs_embeds / new_input_ids: a step's sequence holds no speed meta-action token")
    before_speed = torch.zeros_like(is_speed)
    before_speed[:, :-1] = is_speed[:, 1:]
    value_pos = width - 1 - before_speed.flip(1).float().argmax(1)
    decision_pos = lengths - 2
    rows = torch.arange(b, device=device)
    if device.type == "cuda":  # one model pass begins (CUDA-graph trees of ppo.compile's graphed layers)
        torch.compiler.cudagraph_mark_step_begin()
    with _eval_mode(model), model.no_llm_gradient_checkpointing(), policy._autocast():
        embeds = embeds.to(model.llm_embeddings.weight.dtype)
        if model._lora_layers:
            hidden = model.run_llm(("decision_expert", "value_expert"), torch.cat([embeds, embeds]),
                                   torch.cat([mask, mask]))
            decision_hidden, value_hidden = hidden[:b], hidden[b:]
        else:
            decision_hidden = model.run_llm("decision_expert", embeds, mask)
            value_hidden = model.run_llm("value_expert", embeds, mask)
        logits = model._speed_logits(decision_hidden[rows, decision_pos])
        value = model.value_head(value_hidden[rows, value_pos].float()).squeeze(-1).float()
    log_probs = torch.log_softmax(logits / temperature, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return log_probs, value, entropy
