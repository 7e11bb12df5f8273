"""Upstream's RL protocol in the upstream-named RL configs: a decision every tick, returns discounted per tick
with gamma 0.99 and lambda 1, five repetitions of each rollout route, and the sparse reward's events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.collector import make_jobs
from minddrive.rl.gae import compute_gae
from minddrive.rl.rewards import PENALTY_EVENTS, SparseRouteReward
from minddrive.rl.settings import ReturnParams

CONFIGS = Path(__file__).resolve().parents[2] / "adzoo" / "minddrive" / "configs"
UPSTREAM_NAMED = ("minddrive_rl_ppo_train.py", "minddrive_rl_ppo_train_3B.py", "minddrive_qwen2_05B_lora_rollout.py",
                  "minddrive_qwen25_3B_lora_rollout.py", "minddrive_rl_ppo_train_parity44.py")

ROUTES_XML = """<?xml version='1.0' encoding='utf-8'?>
<routes>
 <route id="101" town="Town01">
  <waypoints><position x="0.0" y="0.0" z="0.0"/><position x="50.0" y="0.0" z="0.0"/></waypoints>
  <scenarios></scenarios>
 </route>
 <route id="102" town="Town01">
  <waypoints><position x="0.0" y="10.0" z="0.0"/><position x="50.0" y="10.0" z="0.0"/></waypoints>
  <scenarios></scenarios>
 </route>
</routes>
"""


@pytest.mark.parametrize("name", UPSTREAM_NAMED)
def test_upstream_named_configs_decide_every_tick_and_discount_per_tick(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.rollout.decision_interval == 1
    assert ReturnParams.from_config(cfg.rl) == ReturnParams(gamma=0.99, gae_lambda=1.0)
    assert cfg.reward.type == "SparseRouteReward" and cfg.rollout.stop_on_penalty


def test_tiny_configs_name_their_deviations():
    cfg = load_config(CONFIGS / "minddrive_tiny_rl_ppo_train.py")
    assert cfg.rollout.decision_interval == 5 and cfg.rl.gae_lambda == 0.95 and cfg.reward.type == "ShapedReward"


def test_returns_are_monte_carlo_discounted_per_tick():
    """Upstream's episodes: reward 0 every tick, +1 (or -1) at the last; lambda 1 makes the return gamma^k."""
    ticks = 400                                  # 20 s at 20 Hz
    rewards = np.zeros(ticks, np.float32)
    rewards[-1] = 1.0
    values = np.linspace(0.1, 0.5, ticks).astype(np.float32)
    advantages, returns = compute_gae(rewards, values, True, 0.0, gamma=0.99, lam=1.0)
    expected = 0.99 ** np.arange(ticks - 1, -1, -1)
    np.testing.assert_allclose(returns, expected, rtol=1e-5)
    np.testing.assert_allclose(advantages, expected - values, rtol=1e-4, atol=1e-6)
    assert returns[ticks - 1 - 10] == pytest.approx(0.99 ** 10)  # 0.5 s before the end: 0.904, not 0.99


def test_route_file_jobs_repeat_each_route_five_times_and_need_the_file(tmp_path):
    routes = tmp_path / "rollout_routes.xml"
    routes.write_text(ROUTES_XML)
    jobs = make_jobs(dict(type="route_file", path=str(routes), repetitions=5))
    assert len(jobs) == 10 and len({job.key for job in jobs}) == 10
    assert sorted(job.options["route_id"] for job in jobs) == ["101"] * 5 + ["102"] * 5
    parity = load_config(CONFIGS / "minddrive_rl_ppo_train_parity44.py")
    assert parity.rl_routes.repetitions == 5
    shipped = make_jobs(dict(parity.rl_routes, path=str(CONFIGS.parents[2] / parity.rl_routes.path)))
    assert len(shipped) == 44 * 5                                # upstream's 44 rollout routes, 5 times each
    with pytest.raises(UserError, match=r"^rl_routes.path = None: expected a route XML file"):
        make_jobs(dict(parity.rl_routes, path=None))
    with pytest.raises(UserError, match="missing.xml: route file not found"):
        make_jobs(dict(type="route_file", path=str(tmp_path / "missing.xml")))


def test_sparse_reward_ends_on_upstreams_seven_events_and_pays_one_at_completion():
    # upstream's PENALTY_CONFIG, in this project's event names
    assert PENALTY_EVENTS == ("collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light",
                              "stop_infraction", "route_dev", "outside_route_lanes")
    for event in PENALTY_EVENTS:
        reward = SparseRouteReward()
        reward.reset()
        step = reward({}, dict(events=[(event, {})], route_completion=40.0))
        assert (step.reward, step.terminal) == (-1.0, True), event
    for event in ("vehicle_blocked", "route_timeout", "min_speed_infractions"):
        reward = SparseRouteReward()
        reward.reset()
        step = reward({}, dict(events=[(event, {})], route_completion=40.0))
        assert step.reward == 0.0 and not step.terminal, event
    reward = SparseRouteReward()
    reward.reset()
    assert reward({}, dict(events=[], route_completion=99.0)).reward == 0.0
    final = reward({}, dict(events=[], route_completion=100.0))
    assert (final.reward, final.terminal) == (1.0, True)
