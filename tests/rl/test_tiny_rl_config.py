"""The demo's RL config: reward semantics, policy loading through the one evaluator, PPO temperature."""

from __future__ import annotations

import pytest
import torch

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.rewards import build_reward

TINY_RL = "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"
PARITY = "adzoo/minddrive/configs/minddrive_rl_ppo_train_parity44.py"


def test_tiny_reward_punishes_blocking_timeouts_and_slowness_but_parity_keeps_upstream():
    tiny = build_reward(load_config(TINY_RL).reward)
    parity = build_reward(load_config(PARITY).reward)
    assert type(parity).__name__ == "SparseRouteReward"
    for event in ("vehicle_blocked", "route_timeout"):
        for reward in (tiny, parity):
            reward.reset()
        step = tiny(None, dict(events=[(event, "msg")], route_completion=0.0))
        assert step.reward == pytest.approx(-0.35) and step.terminal       # costs a layout collision, ends
        step = parity(None, dict(events=[(event, "msg")], route_completion=40.0))
        assert (step.reward, step.terminal) == (0.0, False)     # upstream: stopping forever costs nothing
    # the leaderboard's min-speed infraction (the IL policy's main DS loss) is felt only by the tiny reward
    tiny.reset(), parity.reset()
    slow = dict(events=[("min_speed_infractions", "x")], route_completion=0.0)
    assert tiny(None, slow).reward == pytest.approx(-0.35) and parity(None, slow).reward == 0.0
    # progress is paid as it happens (10 % of the route = 0.1), completion adds +1 on both
    tiny.reset(), parity.reset()
    assert tiny(None, dict(events=[], route_completion=10.0)).reward == pytest.approx(0.1)
    assert tiny(None, dict(events=[], route_completion=100.0)).reward == pytest.approx(1.9)
    assert parity(None, dict(events=[], route_completion=100.0)).reward == 1.0
    tiny.reset()
    step = tiny(None, dict(events=[("collisions_vehicle", "x")], route_completion=0.0))
    assert step.reward == pytest.approx(-0.4) and step.terminal


def test_tiny_rl_config_is_demo_sized():
    cfg = load_config(TINY_RL)
    assert cfg.rl_routes.count * 3 <= 96 and cfg.rl_eval.limit == 16
    assert cfg.rollout.num_workers == 1 and cfg.rollout.envs_per_worker == cfg.rl_eval.num_envs == 8
    assert cfg.env.render is True                       # the VLA reads cameras; the driver renders lazily


def test_build_policy_wraps_minddrive_in_the_policy_contract(tmp_path):
    from minddrive.eval.closed_loop import build_policy
    from minddrive.models.policy import MindDrivePolicy
    from minddrive.rl.feature_policy import StateFeaturePolicy

    cfg = load_config(TINY_RL)
    from minddrive.rollout.policy import load_policy, save_policy

    policy = load_policy(cfg, None)
    save_policy(policy, tmp_path / "vla", cfg, meta=dict(stage="test"))
    loaded = build_policy(cfg, str(tmp_path / "vla"), None)
    from minddrive.models.acceleration import fast_paths

    assert isinstance(loaded, MindDrivePolicy) and not loaded.model.training and fast_paths(loaded.model) is None
    # eval_driver.policy / eval_driver.device: how and where `minddrive eval` runs the model (GPU configs)
    fast = build_policy(cfg, str(tmp_path / "vla"), None, runtime=dict(merge_adapters=True))
    assert fast_paths(fast.model).merged is not None and fast.device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="eval_driver.device: 'cuda' but torch sees no CUDA device"):
            build_policy(cfg, str(tmp_path / "vla"), None, device="cuda")
    state_cfg = load_config("adzoo/minddrive/configs/minddrive_state_rl_ppo_train.py")
    state = load_policy(state_cfg, None)
    save_policy(state, tmp_path / "state", state_cfg, meta=dict(stage="test"))
    assert isinstance(build_policy(state_cfg, str(tmp_path / "state"), None), StateFeaturePolicy)


def test_ppo_scores_with_the_rollout_temperature():
    from minddrive.rl.ppo import PPOHyperParams, ppo_update

    seen = []

    class Policy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.zeros(7))

        def preprocess(self, obs_list, memory=None):
            return dict(n=len(obs_list))

        def scene_tokens(self, batch):
            return None

        def evaluate_decisions(self, batch, actions, temperature=1.0, scene=None):
            seen.append(temperature)
            log_probs = torch.log_softmax(self.logits / temperature, -1).expand(batch["n"], -1)
            return log_probs, torch.zeros(batch["n"]), -(log_probs.exp() * log_probs).sum(-1)

    class Steps(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(obs={}, action=i % 7, old_log_probs=torch.full((7,), -torch.log(torch.tensor(7.0))),
                        advantage=float(i), ret=0.0, memory=None)

    from minddrive.rl import ppo as ppo_module

    hp = PPOHyperParams(epochs=1, batch_size=4, temperature=0.5)
    policy = Policy()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    collate = ppo_module.collate_steps
    ppo_module.collate_steps = lambda items: dict(obs=[it["obs"] for it in items],
                                                  actions=torch.tensor([it["action"] for it in items]),
                                                  old_log_probs=torch.stack([it["old_log_probs"] for it in items]),
                                                  advantages=torch.tensor([it["advantage"] for it in items]),
                                                  returns=torch.zeros(len(items)), memory=[None] * len(items))

    class NoTemperature(Policy):  # breaks the policy contract (interfaces.TrainablePolicy): never scored at 1.0
        def evaluate_decisions(self, batch, actions):
            return super().evaluate_decisions(batch, actions)

    try:
        ppo_update(policy, optimizer, Steps(), hp, torch.device("cpu"), show_progress=False)
        assert seen == [0.5, 0.5]  # the behaviour-gap scoring pass, then the minibatch: both at the rollout temperature
        with pytest.raises(TypeError, match="temperature"):
            ppo_update(NoTemperature(), optimizer, Steps(), hp, torch.device("cpu"), show_progress=False)
    finally:
        ppo_module.collate_steps = collate
