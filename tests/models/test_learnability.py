"""The model can learn what imitation and RL need: a short CPU overfit of the plan, and plans that follow
the decision they are conditioned on (PPO changes decisions; the action expert must act on them)."""

from __future__ import annotations

import torch

from minddrive.constants import SPEED_ACTIONS

STOP, SPEED_UP = SPEED_ACTIONS.index("stop"), SPEED_ACTIONS.index("speed up")


def _inference_plan_l1(model, batch) -> float:
    """Planning L1 (same weighting as ``loss_planning``) of what ``plan`` returns for the batch's decisions."""
    was = model.training
    model.eval()
    with torch.no_grad():
        plan = model.plan(batch, batch["speed_action"], batch["command"])
    model.train(was)
    l1 = (plan["speed_waypoints"] - batch["ego_fut_traj"]).abs().mean() + (plan["path"] - batch["path_points"]).abs().mean()
    return float(l1) * model.loss_weights["planning"]


def test_short_overfit_reduces_trajectory_l1(model_factory, batch_factory):
    """60 CPU steps on 4 samples drive the planning L1 down 10x: both the training loss and, more to the
    point, the L1 of the deterministic plan ``act`` executes. Boundary/collision terms are off: the synthetic
    targets deliberately pass near boundaries and agents, which would fight the L1 fit."""
    torch.manual_seed(0)
    model = model_factory(loss_weights=dict(map_boundary=0.0, collision=0.0))
    batch = batch_factory(model.tokenizer, batch_size=4, seed=3)
    model.set_trainable(["action_expert", "projector", "trajectory_head"])
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    plan_before = _inference_plan_l1(model, batch)
    history = []
    for _ in range(60):
        losses = model(batch)
        history.append(float(losses["loss_planning"].detach()))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    plan_after = _inference_plan_l1(model, batch)
    late = sum(history[-5:]) / 5  # the training decode samples the latent: average out its noise
    assert late < history[0] / 10, (history[0], late)
    assert plan_after < plan_before / 10, (plan_before, plan_after)
    assert history[0] > 20.0  # a real starting error (metres x weight 3), not a trivially small target


def test_plan_follows_the_speed_decision(model_factory, decision_pair_factory):
    """Same observation, <stop> vs <speed_up> with matching targets: after a short teacher-forced fit, ``plan``
    called with each decision returns the matching speed profile."""
    torch.manual_seed(0)
    model = model_factory(loss_weights=dict(map_boundary=0.0, collision=0.0))
    batch = decision_pair_factory(model.tokenizer, (STOP, SPEED_UP))
    model.set_trainable(["action_expert", "projector", "trajectory_head"])
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(30):
        losses = model(batch)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    one_obs = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in batch.items()}
    with torch.no_grad():
        scene, _ = model.encode_scene(one_obs)
        stop = model.plan(one_obs, torch.tensor([STOP]), scene=scene)["speed_waypoints"][0]
        fast = model.plan(one_obs, torch.tensor([SPEED_UP]), scene=scene)["speed_waypoints"][0]
    gt_stop, gt_fast = batch["ego_fut_traj"][0], batch["ego_fut_traj"][1]
    assert float(gt_fast[-1, 0] - gt_stop[-1, 0]) > 20.0  # the targets really differ (about 27 m at 3 s)
    assert float(fast[-1, 0] - stop[-1, 0]) > 0.6 * float(gt_fast[-1, 0] - gt_stop[-1, 0]), (stop[-1], fast[-1])
    assert float((stop - gt_stop).abs().mean()) < 2.0 and float((fast - gt_fast).abs().mean()) < 4.0
