"""Synthetic batches with exactly the ``minddrive.interfaces`` training-batch keys, for model tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from minddrive.config import load_config
from minddrive.constants import CAMERA_NAMES, CAMERA_RIG, EGO_STATE_DIM, NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS
from minddrive.data import prompts
from minddrive.constants import NUM_ROUTE_POINTS

TINY_CONFIG = "adzoo/minddrive/configs/_base_/models/minddrive_tiny.py"
IMAGE_HW = (64, 112)  # smaller than the config's 128x224 to keep tests fast; the CNN is size-agnostic


def camera_matrices(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intrinsic (6,3,3), cam2ego (6,4,4), lidar2img (6,4,4)) of the Bench2Drive rig at this image size."""
    ks, c2e, l2i = [], [], []
    ue_to_cv = np.array([[0, 1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    for name in CAMERA_NAMES:
        rig = CAMERA_RIG[name]
        f = width / (2 * math.tan(math.radians(rig["fov"]) / 2))
        k = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
        yaw = math.radians(rig["yaw"])
        pose = np.eye(4)
        pose[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
        pose[:3, 3] = [rig["x"], rig["y"], rig["z"]]
        k4 = np.eye(4)
        k4[:3, :3] = k
        ks.append(k), c2e.append(pose), l2i.append(k4 @ ue_to_cv @ np.linalg.inv(pose))
    return (np.stack(ks).astype(np.float32), np.stack(c2e).astype(np.float32), np.stack(l2i).astype(np.float32))


def tokenize_conversation(tokenizer, turns):
    """ids and labels (-100 outside answers) of a chat conversation, using character offsets."""
    text, spans = prompts.conversation_text(turns)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [-100] * len(enc["input_ids"])
    for i, (start, end) in enumerate(enc["offset_mapping"]):
        if any(s <= start and end <= e for s, e in spans):
            labels[i] = enc["input_ids"][i]
    return enc["input_ids"], labels


def make_batch(tokenizer, batch_size: int = 2, image_hw=IMAGE_HW, seed: int = 0, planning: bool = True,
               num_agents: int = 3, num_boundaries: int = 2, boundary_points: int = 8) -> dict:
    """A batch with every interfaces.py key; trajectories are smooth functions of the speed/command."""
    rng = np.random.default_rng(seed)
    h, w = image_hw
    k, c2e, l2i = camera_matrices(h, w)
    rows, labels, speed_actions, path_actions = [], [], [], []
    for i in range(batch_size):
        s, p = int(rng.integers(7)), int(rng.integers(6))
        turns = [(prompts.decision_question(p), prompts.decision_answer(s, p))]
        if planning:
            turns.append((prompts.PLANNING_QUESTION, prompts.PLANNING_ANSWER))
        ids, lab = tokenize_conversation(tokenizer, turns)
        rows.append(ids), labels.append(lab), speed_actions.append(s), path_actions.append(p)
    length = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((batch_size, length), pad, dtype=torch.long)
    label_t = torch.full((batch_size, length), -100, dtype=torch.long)
    mask = torch.zeros((batch_size, length), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labels)):
        input_ids[i, :len(r)], label_t[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), torch.tensor(lab), 1
    speed = rng.uniform(2, 10, batch_size).astype(np.float32)
    t = np.arange(1, NUM_FUTURE_WAYPOINTS + 1, dtype=np.float32) * 0.5
    fut = np.stack([np.stack([v * t, 0.05 * v * t ** 2], -1) for v in speed])
    d = np.arange(1, NUM_PATH_POINTS + 1, dtype=np.float32) * 2.0
    # The path bends with the navigation command, so it is learnable from the inputs.
    path = np.stack([np.stack([d, 0.01 * (p - 2.5) * d ** 2], -1) for p in path_actions])
    ego_state = np.zeros((batch_size, EGO_STATE_DIM), np.float32)
    ego_state[:, 0] = speed
    agent_boxes = rng.normal(0, 15, (batch_size, num_agents, 6, 5)).astype(np.float32)
    agent_boxes[..., 2:4] = [4.5, 2.0]
    bx = np.linspace(-10, 40, boundary_points, dtype=np.float32)
    bounds = np.stack([np.stack([np.stack([bx, np.full_like(bx, side)], -1) for side in (-3.5, 3.5)][:num_boundaries])
                       for _ in range(batch_size)])
    f = torch.from_numpy
    return {
        "img": f(rng.uniform(0, 255, (batch_size, len(CAMERA_NAMES), 3, h, w)).astype(np.float32)),
        "cam_intrinsic": f(np.broadcast_to(k, (batch_size, *k.shape)).copy()),
        "cam2ego": f(np.broadcast_to(c2e, (batch_size, *c2e.shape)).copy()),
        "lidar2img": f(np.broadcast_to(l2i, (batch_size, *l2i.shape)).copy()),
        "ego_state": f(ego_state),
        "ego_history": f(-np.stack([fut[:, :4, :]], 0)[0][:, ::-1].copy()),
        "command": torch.tensor(path_actions, dtype=torch.long),
        "target_point": f(rng.normal(20, 5, (batch_size, 2)).astype(np.float32)),
        "route": f(np.stack([np.stack([np.arange(NUM_ROUTE_POINTS) * 2.0, np.zeros(NUM_ROUTE_POINTS)], -1)]
                            * batch_size).astype(np.float32)),
        "input_ids": input_ids, "attention_mask": mask, "labels": label_t,
        "ego_fut_traj": f(fut.astype(np.float32)), "ego_fut_mask": torch.ones(batch_size, NUM_FUTURE_WAYPOINTS),
        "path_points": f(path.astype(np.float32)), "path_mask": torch.ones(batch_size, NUM_PATH_POINTS),
        "speed_action": torch.tensor(speed_actions), "path_action": torch.tensor(path_actions),
        "agent_boxes": f(agent_boxes), "agent_mask": torch.ones(batch_size, num_agents, 6),
        "map_boundaries": f(bounds.astype(np.float32)), "map_mask": torch.ones(batch_size, num_boundaries, boundary_points),
        "has_planning": torch.full((batch_size,), planning, dtype=torch.bool),
        "meta": [{"clip": "synthetic", "frame": i} for i in range(batch_size)],
    }


def make_decision_pair_batch(tokenizer, speed_actions: tuple[int, int], seed: int = 5) -> dict:
    """Two rows with the *same* observation (images, ego state, command, route) that differ only in the
    speed decision of their conversation and in a future trajectory matching it: ``speed_actions[0]``
    creeps 0.3 m/s, ``speed_actions[1]`` accelerates from the ego speed at 2 m/s^2. Only the decision
    token can tell the rows apart, so fitting both requires the plan to follow the decision."""
    batch = make_batch(tokenizer, batch_size=2, seed=seed)
    for key in ("img", "cam_intrinsic", "cam2ego", "lidar2img", "ego_state", "ego_history", "command", "target_point",
                "route", "path_points", "path_action", "agent_boxes", "map_boundaries"):
        batch[key][1] = batch[key][0]
    path_action = int(batch["command"][0])
    rows = [tokenize_conversation(tokenizer, [(prompts.decision_question(path_action), prompts.decision_answer(s, path_action)),
                                              (prompts.PLANNING_QUESTION, prompts.PLANNING_ANSWER)])
            for s in speed_actions]
    length = max(len(ids) for ids, _ in rows)
    batch["input_ids"] = torch.full((2, length), tokenizer.pad_token_id, dtype=torch.long)
    batch["labels"] = torch.full((2, length), -100, dtype=torch.long)
    batch["attention_mask"] = torch.zeros((2, length), dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        batch["input_ids"][i, :len(ids)], batch["labels"][i, :len(ids)] = torch.tensor(ids), torch.tensor(labels)
        batch["attention_mask"][i, :len(ids)] = 1
    t = torch.arange(1, NUM_FUTURE_WAYPOINTS + 1, dtype=torch.float32) * 0.5
    v = float(batch["ego_state"][0, 0])
    zeros = torch.zeros_like(t)
    batch["ego_fut_traj"] = torch.stack([torch.stack([0.3 * t, zeros], -1), torch.stack([(v + t) * t, zeros], -1)])
    batch["speed_action"] = torch.tensor(speed_actions)
    return batch


@pytest.fixture(scope="session")
def tiny_cfg():
    return load_config(TINY_CONFIG)


def build_tiny(cfg=None, **overrides):
    from minddrive.registry import MODELS, build

    model_cfg = dict((cfg or load_config(TINY_CONFIG)).model)
    model_cfg.update(overrides)
    return build(model_cfg, MODELS, where="model")


@pytest.fixture()
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    return build_tiny(tiny_cfg)


@pytest.fixture()
def tiny_batch(tiny_model):
    return make_batch(tiny_model.tokenizer, batch_size=2)


@pytest.fixture(scope="session")
def shared_model(tiny_cfg):
    """One tiny model for tests that only read it (no training, no weight edits, no set_trainable)."""
    torch.manual_seed(0)
    return build_tiny(tiny_cfg)


# Tests run with --import-mode=importlib, where conftest modules cannot be imported by name: the helpers
# are handed out as fixtures instead.
@pytest.fixture(scope="session")
def batch_factory():
    return make_batch


@pytest.fixture(scope="session")
def model_factory():
    return build_tiny


@pytest.fixture(scope="session")
def decision_pair_factory():
    return make_decision_pair_batch
