"""A small decision policy over privileged state features, for RL research without the VLA model.

It has the same API as ``MindDrivePolicy`` (``preprocess``, ``act``, ``evaluate_decisions``,
``from_checkpoint``/``save_checkpoint``) and the same structure: a *decision expert* (an MLP scoring
the 7 speed meta-actions), a *value expert* + *value head*, and an *action expert* — here the
simulator's scripted ``decision_to_plan``, which turns a meta-action into a path and speed
waypoints. So PPO, the collector and the driver run unchanged on it, in seconds on a CPU.

Features (``scene_features``) are read from the simulator's scene snapshot (privileged, like
Roach/CaRL's BEV): ego speed and limit, the nearest actor in the ego corridor ahead (gap, closing
speed), the nearest vulnerable road user near the path, the traffic light / stop sign ahead, and
route curvature. ``PolicyDriver(obs_hook=attach_scene_features)`` adds them to each observation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minddrive.constants import EGO_STATE_FIELDS, NUM_PATH_ACTIONS, NUM_SPEED_ACTIONS
from minddrive.errors import UserError
from minddrive.registry import MODELS

FEATURE_NAMES = ("speed", "speed_limit", "lead_gap", "lead_closing", "lead_present", "vru_gap", "vru_lateral",
                 "vru_present", "light_red", "light_dist", "stop_dist", "curvature") + \
                tuple(f"command_{i}" for i in range(NUM_PATH_ACTIONS))
NUM_FEATURES = len(FEATURE_NAMES)
_SPEED = EGO_STATE_FIELDS.index("speed")
_LIMIT = EGO_STATE_FIELDS.index("speed_limit")
_FAR = 50.0


def _to_ego(scene: Any, x: float, y: float) -> tuple[float, float]:
    c, s = math.cos(scene.ego.yaw), math.sin(scene.ego.yaw)
    dx, dy = x - scene.ego.x, y - scene.ego.y
    return c * dx + s * dy, -s * dx + c * dy


def scene_features(scene: Any, obs: dict) -> np.ndarray:
    """The ``NUM_FEATURES`` vector of one world (see ``FEATURE_NAMES``); distances scaled to ~[0, 1]."""
    speed, limit = float(obs["ego_state"][_SPEED]), float(obs["ego_state"][_LIMIT])
    lead_gap, lead_closing, vru_gap, vru_lat = _FAR, 0.0, _FAR, 5.0
    for actor in scene.actors:
        ax, ay = _to_ego(scene, actor.x, actor.y)
        if ax <= 0.0 or ax > _FAR:
            continue
        gap = ax - actor.extent[0] - scene.ego.extent[0]
        if actor.kind in ("walker", "bicycle") and abs(ay) < 6.0 and gap < vru_gap:
            vru_gap, vru_lat = gap, abs(ay)
        elif abs(ay) < 2.2 and gap < lead_gap:
            lead_gap = gap
            along = actor.speed * math.cos(actor.yaw - scene.ego.yaw)
            lead_closing = speed - along
    light_red, light_dist = 0.0, _FAR
    for light in scene.traffic_lights:
        if light.affects_ego and int(light.state) in (0, 1):
            mid = np.asarray(light.stop_line, dtype=np.float64).reshape(2, 2).mean(0)
            lx, _ = _to_ego(scene, mid[0], mid[1])
            if 0.0 < lx < light_dist:
                light_red, light_dist = 1.0, lx
    stop_dist = _FAR
    for sign in scene.stop_signs:
        if sign.affects_ego:
            mid = np.asarray(sign.stop_line, dtype=np.float64).reshape(2, 2).mean(0)
            sx, _ = _to_ego(scene, mid[0], mid[1])
            if 0.0 < sx < stop_dist:
                stop_dist = sx
    route = np.asarray(obs.get("route", np.zeros((2, 2))), dtype=np.float64)
    curvature = float(np.clip(np.abs(route[min(len(route) - 1, 10), 1]) / 20.0, 0.0, 1.0)) if len(route) else 0.0
    command = np.zeros(NUM_PATH_ACTIONS, dtype=np.float32)
    command[int(obs.get("command", 0))] = 1.0
    base = [speed / 10.0, limit / 10.0, min(lead_gap, _FAR) / _FAR, np.clip(lead_closing / 10.0, -1, 1),
            float(lead_gap < _FAR), min(vru_gap, _FAR) / _FAR, min(vru_lat, 5.0) / 5.0, float(vru_gap < _FAR),
            light_red, min(light_dist, _FAR) / _FAR, min(stop_dist, _FAR) / _FAR, curvature]
    return np.concatenate([np.asarray(base, dtype=np.float32), command])


def attach_scene_features(env: Any, obs: dict) -> dict:
    """Driver ``obs_hook``: add ``obs["features"]`` from the env's scene snapshot."""
    return dict(obs, features=scene_features(env.snapshot(), obs))


@MODELS.register_module()
class StateFeaturePolicy(nn.Module):
    """Decision expert + value net over ``scene_features``; scripted action expert for the plan."""

    obs_hook = staticmethod(attach_scene_features)  # the driver adds features to every observation

    def __init__(self, hidden: int = 64, num_features: int = NUM_FEATURES, init_bias: list[float] | None = None):
        super().__init__()
        self.config = dict(type="StateFeaturePolicy", hidden=hidden, num_features=num_features, init_bias=init_bias)
        self.decision_expert = nn.Sequential(nn.Linear(num_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                             nn.Tanh(), nn.Linear(hidden, NUM_SPEED_ACTIONS))
        self.value_expert = nn.Sequential(nn.Linear(num_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.value_head = nn.Linear(hidden, 1)
        # Small last layer (CleanRL's 0.01 gain): the initial policy is its bias, near-uniform by default.
        nn.init.orthogonal_(self.decision_expert[-1].weight, gain=0.01)
        nn.init.zeros_(self.decision_expert[-1].bias)
        if init_bias is not None:
            with torch.no_grad():
                self.decision_expert[-1].bias.copy_(torch.tensor(init_bias, dtype=torch.float32))

    # --- the policy API (minddrive.interfaces.TrainablePolicy) -------------------------------------
    def preprocess(self, obs_list: list[dict], memory: dict | None = None) -> dict:
        """No temporal memory: ``memory`` is always None here (``act`` returns none) and ignored."""
        features = np.stack([np.asarray(o["features"], dtype=np.float32) for o in obs_list])
        return dict(features=torch.from_numpy(features), obs=list(obs_list))

    def _heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(self.decision_expert(features), dim=-1)
        value = self.value_head(self.value_expert(features)).squeeze(-1)
        return log_probs, value

    @torch.inference_mode()
    def act(self, batch: dict, sample: bool = True, temperature: float = 1.0, decision: torch.Tensor | None = None):
        from minddrive.interfaces import ActOutput

        log_probs, value = self._heads(batch["features"].to(self._device()))
        if decision is None:
            decision = (torch.distributions.Categorical(logits=log_probs / max(temperature, 1e-6)).sample()
                        if sample else log_probs.argmax(-1))
        paths, waypoints, path_decisions = [], [], []
        for obs, speed_index in zip(batch["obs"], decision.tolist()):
            path, wps, path_index = self.plan(obs, speed_index)
            paths.append(path)
            waypoints.append(wps)
            path_decisions.append(path_index)
        return ActOutput(decision=decision, log_probs=log_probs.float(), value=value.float(),
                         path=torch.as_tensor(np.stack(paths), dtype=torch.float32),
                         speed_waypoints=torch.as_tensor(np.stack(waypoints), dtype=torch.float32),
                         path_decision=torch.as_tensor(path_decisions, dtype=torch.long))

    def plan(self, obs: dict, speed_index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The action expert: here the simulator's scripted one."""
        return scripted_plan(obs, speed_index)

    def evaluate_decisions(self, batch: dict, actions: torch.Tensor, temperature: float = 1.0,
                           scene: torch.Tensor | None = None):
        """(log-probs of all 7 actions, value, entropy), with gradients, for PPO; at temperature 1 only (``scene``
        is never given: :meth:`scene_tokens` has none)."""
        if temperature != 1.0:
            raise UserError(f"ppo.temperature {temperature}: {type(self).__name__} scores decisions at temperature 1 only")
        log_probs, value = self._heads(batch["features"].to(self._device()))
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return log_probs, value, entropy

    def scene_tokens(self, batch: dict) -> None:
        """No scene encoder: nothing for PPO to cache."""
        return None

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # --- checkpoints (the directory layout of minddrive.interfaces) ------------------------------------
    def save_checkpoint(self, path: str, cfg: Any = None, meta: dict | None = None) -> None:
        from safetensors.torch import save_file

        from minddrive.utils.io import atomic_path

        with atomic_path(path, replace_dir=True) as tmp:  # the caller's own checkpoint path
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                      str(tmp / "model.safetensors"))
            (tmp / "config.py").write_text(f"model = {self.config!r}\n")
            (tmp / "meta.json").write_text(json.dumps(dict(meta or {}, model=self.config), indent=2, default=str))

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu") -> "StateFeaturePolicy":
        from minddrive.utils.io import read_json, read_safetensors

        config = read_json(Path(path) / "meta.json")["model"]
        config = {k: v for k, v in config.items() if k != "type"}
        policy = cls(**config)
        policy.load_state_dict(read_safetensors(Path(path) / "model.safetensors"))
        return policy.to(device)


def scripted_plan(obs: dict, speed_index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The simulator's scripted action expert: (path (P,2), speed waypoints (6,2), path index)."""
    from minddrive.sim.controller import decision_to_plan

    path_index = int(obs.get("command", 0))  # the path decision follows navigation (docs/upstream.md#online-rl)
    plan = decision_to_plan(obs, speed_index)
    return np.asarray(plan["path"]), np.asarray(plan["speed_waypoints"]), path_index
