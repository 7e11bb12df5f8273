import numpy as np
import pytest

from minddrive.errors import UserError
from minddrive.rl.gae import compute_gae
from minddrive.rl.rewards import ShapedReward, SparseRouteReward, build_reward


def info(completion=0.0, events=()):
    return dict(route_completion=completion, events=list(events))


def test_sparse_reward_upstream_semantics():
    reward = SparseRouteReward()
    assert reward(None, info(50.0)).reward == 0.0
    step = reward(None, info(60.0, [("collisions_vehicle", "hit")]))
    assert (step.reward, step.terminal, step.events) == (-1.0, True, ("collisions_vehicle",))
    assert reward(None, info(60.0, [("min_speed_infractions", "slow")])).reward == 0.0  # not a penalty event
    done = reward(None, info(100.0))
    assert (done.reward, done.terminal) == (1.0, True)
    assert reward(None, info(100.0)).reward == 0.0      # paid once
    reward.reset()
    assert reward(None, info(100.0)).reward == 1.0


def test_shaped_reward_progress_penalty_comfort():
    reward = ShapedReward(progress_weight=1.0, penalty_weight=1.0, comfort_weight=0.0)
    assert reward(None, info(10.0)).reward == pytest.approx(0.10)
    step = reward(None, info(10.0, [("red_light", "ran it")]))
    assert step.reward == pytest.approx(-0.3) and step.terminal
    jerky = ShapedReward(progress_weight=0.0, comfort_weight=1.0)
    ego = np.zeros(8, dtype=np.float32)
    jerky(dict(ego_state=ego), info())
    ego2 = ego.copy()
    ego2[1] = 2.0  # acc_x jumps by 2 m/s^2 in one 0.1 s tick
    assert jerky(dict(ego_state=ego2), info()).reward == pytest.approx(-2.0)


def test_build_reward_rejects_unknown_type():
    assert isinstance(build_reward(dict(type="SparseRouteReward")), SparseRouteReward)
    with pytest.raises(UserError, match="reward.type"):
        build_reward(dict(type="NoSuchReward"))


def test_gae_matches_direct_sum_and_bootstraps_only_when_cut_off():
    rewards = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    values = np.array([0.5, 0.6, 0.7], dtype=np.float32)
    gamma, lam = 0.99, 0.9
    adv, ret = compute_gae(rewards, values, terminated=True, last_value=123.0, gamma=gamma, lam=lam)
    deltas = rewards + gamma * np.array([0.6, 0.7, 0.0]) - values
    expected = [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, 3)) for t in range(3)]
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(ret, adv + values, rtol=1e-6)
    # lambda = 1: returns are discounted Monte-Carlo returns
    _, mc = compute_gae(rewards, values, terminated=True, last_value=0.0, gamma=gamma, lam=1.0)
    np.testing.assert_allclose(mc, [gamma ** 2, gamma, 1.0], rtol=1e-6)
    # cut off: V(s_T) is bootstrapped
    adv_cut, _ = compute_gae(rewards, values, terminated=False, last_value=2.0, gamma=gamma, lam=lam)
    assert adv_cut[-1] == pytest.approx(1.0 + gamma * 2.0 - 0.7)
