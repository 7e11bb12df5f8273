"""Both policies keep the written policy contract (minddrive.interfaces.DrivingPolicy / TrainablePolicy)."""

from __future__ import annotations

import inspect

import pytest
import torch

from minddrive.errors import UserError
from minddrive.interfaces import DrivingPolicy, TrainablePolicy
from minddrive.rl.feature_policy import NUM_FEATURES, StateFeaturePolicy

PROTOCOL_METHODS = {DrivingPolicy: ("preprocess", "act"),
                    TrainablePolicy: ("preprocess", "act", "evaluate_decisions", "scene_tokens")}


def tiny_minddrive_policy():
    from minddrive.config import load_config
    from minddrive.rollout.policy import load_policy

    return load_policy(load_config("adzoo/minddrive/configs/minddrive_tiny_infer.py", {"env.render": False}), None)


def assert_keeps(policy, protocol) -> None:
    """``isinstance`` (methods present) and, for each method, the protocol's parameters under the same names in
    the same order, optional where the protocol's are (a policy may add optional ones after them)."""
    assert isinstance(policy, protocol)
    for name in PROTOCOL_METHODS[protocol]:
        wanted = list(inspect.signature(getattr(protocol, name)).parameters.values())[1:]  # without self
        have = list(inspect.signature(getattr(policy, name)).parameters.values())
        assert [p.name for p in have[:len(wanted)]] == [p.name for p in wanted], (type(policy).__name__, name)
        optional = [p.default is not inspect.Parameter.empty for p in have[:len(wanted)]]
        assert optional == [p.default is not inspect.Parameter.empty for p in wanted], (type(policy).__name__, name)
        assert all(p.default is not inspect.Parameter.empty for p in have[len(wanted):]), (type(policy).__name__, name)


def test_state_feature_policy_keeps_the_trainable_contract():
    assert_keeps(StateFeaturePolicy(hidden=8), TrainablePolicy)


def test_minddrive_policy_keeps_the_trainable_contract():
    assert_keeps(tiny_minddrive_policy(), TrainablePolicy)


def test_builtin_constant_policy_keeps_the_driving_contract_only():
    from minddrive.eval.closed_loop import ConstantPolicy

    assert_keeps(ConstantPolicy(), DrivingPolicy)
    assert not isinstance(ConstantPolicy(), TrainablePolicy)


def test_the_contract_check_can_fail():
    class NoMemory:
        def preprocess(self, obs_list):
            return obs_list

        def act(self, batch, sample=True, temperature=1.0, decision=None):
            return None

    with pytest.raises(AssertionError):
        assert_keeps(NoMemory(), DrivingPolicy)
    assert not isinstance(object(), DrivingPolicy)


def test_state_feature_policy_scores_at_temperature_one_only_and_has_no_scene_tokens():
    policy = StateFeaturePolicy(hidden=8)
    batch = policy.preprocess([dict(features=[0.0] * NUM_FEATURES)] * 2)
    log_probs, value, entropy = policy.evaluate_decisions(batch, torch.zeros(2, dtype=torch.long))
    assert log_probs.shape == (2, 7) and value.shape == (2,) and entropy.shape == (2,)
    assert policy.scene_tokens(batch) is None
    with pytest.raises(UserError, match="temperature 1 only"):
        policy.evaluate_decisions(batch, torch.zeros(2, dtype=torch.long), temperature=0.5)
