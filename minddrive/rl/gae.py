"""Generalised Advantage Estimation (Schulman et al. 2016) for one episode of decisions."""

from __future__ import annotations

import numpy as np


def compute_gae(rewards: np.ndarray, values: np.ndarray, terminated: bool, last_value: float,
                gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of one episode, computed in one backward pass.

    ``terminated``: the episode truly ended (route completed or a penalty event), so the value after
    the last step is 0. Otherwise it was cut off (tick limit, collection budget) and ``last_value``
    = V(s_T) bootstraps what would have followed. ``gamma`` / ``lam``: see ``ReturnParams`` (config ``rl``).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    advantages = np.zeros_like(rewards)
    next_value = 0.0 if terminated else float(last_value)
    running = 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
        next_value = values[t]
    returns = advantages + values
    return advantages.astype(np.float32), returns.astype(np.float32)
