"""PolicyDriver: decision cadence, batching, plan following, penalty stops and traces."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rl"))
from rl_fakes import CorridorEnv, CorridorPolicy, SpeedController  # noqa: E402

from minddrive.rollout.driver import PolicyDriver  # noqa: E402
from minddrive.interfaces import ActOutput  # noqa: E402
from minddrive.rl.rewards import reward_factory  # noqa: E402


class FixedPolicy(CorridorPolicy):
    """Always the same decision; counts calls and batch sizes."""

    def __init__(self, decision: int):
        super().__init__()
        self.decision, self.batch_sizes = decision, []

    def act(self, batch, sample=True, temperature=1.0, decision=None):
        self.batch_sizes.append(len(batch["obs"]))
        fixed = torch.full((len(batch["obs"]),), self.decision, dtype=torch.long)
        return super().act(batch, sample=sample, decision=fixed)


def make_driver(policy, worlds=2, **kwargs):
    envs = [CorridorEnv(max_ticks=kwargs.pop("max_ticks", 200)) for _ in range(worlds)]
    return PolicyDriver(envs, policy, controller_factory=SpeedController, **kwargs)


def test_decides_every_interval_and_batches_worlds():
    policy = FixedPolicy(decision=3)  # speed up: the corridor is completed, running the red light
    driver = make_driver(policy, worlds=2, record_traces=True, max_ticks=23)
    results = []
    records = driver.run([1, 2, 3], on_episode_end=results.append)
    assert len(records) == 3 and sorted(r.job for r in results) == [1, 2, 3]
    by_job = {r.job: (r.trace, r.world) for r in results}
    # job 1 (world 0) ends at tick 23: one decision at ticks 0, 5, ..., 20; job 2 (world 1) runs 50 ticks
    assert [(len(by_job[j][0]), by_job[j][0].ticks) for j in (1, 2)] == [(5, 23), (10, 50)]
    # job 3 starts at tick 23 on the freed world 0: it decides at once (no plan yet), then joins the
    # common phase (ticks 25, 30, ..., 45), so one decision tick is never split into several policy calls
    assert (len(by_job[3][0]), by_job[3][0].ticks, by_job[3][1]) == (6, 23, 0)
    for trace, _ in by_job.values():
        assert trace.log_probs[0].shape == (7,)
        np.testing.assert_allclose(np.exp(trace.log_probs[0]).sum(), 1.0, rtol=1e-5)
    assert policy.batch_sizes == [2] * 5 + [1] + [2] * 5
    assert sum(policy.batch_sizes) == driver.stats["decisions"] == 21 and driver.stats["policy_calls"] == 11
    assert driver.stats["episodes"] == 3


def test_stop_on_penalty_ends_rollout_with_minus_one_but_eval_runs_on():
    reward = dict(type="SparseRouteReward")
    rollout = make_driver(FixedPolicy(3), worlds=1, record_traces=True, stop_on_penalty=True,
                          reward_factory=reward_factory(reward))
    results = []
    record = rollout.run([7], on_episode_end=results.append)[0]
    trace = results[0].trace
    assert trace.rewards[-1] == -1.0 and trace.terminated
    assert record["status"] == "Started"          # cut at the red light, 20 m into 40 m
    assert 45.0 <= record["scores"]["score_route"] <= 60.0

    evaluation = make_driver(FixedPolicy(3), worlds=1, record_traces=True, stop_on_penalty=False,
                             reward_factory=reward_factory(reward))
    record = evaluation.run([7])[0]
    assert record["status"] == "Completed" and len(record["infractions"]["red_light"]) == 1
    assert record["scores"]["score_composed"] == pytest.approx(70.0)


def test_waiting_policy_completes_without_infraction_and_gets_plus_one():
    class Smart(CorridorPolicy):
        def act(self, batch, sample=True, temperature=1.0, decision=None):
            stop = torch.tensor([bool(o["features"][3]) for o in batch["obs"]])
            return super().act(batch, decision=torch.where(stop, 1, 3))

    driver = make_driver(Smart(), worlds=1, record_traces=True, stop_on_penalty=True,
                         reward_factory=reward_factory(dict(type="SparseRouteReward")))
    results = []
    record = driver.run([7], on_episode_end=results.append)[0]
    assert record["status"] == "Completed" and record["num_infractions"] == 0
    assert results[0].trace.rewards[-1] == 1.0 and sum(results[0].trace.rewards) == 1.0
    assert 1 in results[0].trace.actions


def test_plan_is_retimed_and_moved_into_the_current_ego_frame():
    driver = make_driver(FixedPolicy(0), worlds=1)
    world = driver.worlds[0]
    world.plan = dict(speed_waypoints=np.array([[2.0 * (k + 1), 0.0] for k in range(6)]),
                      path=np.array([[2.0 * (k + 1), 0.0] for k in range(10)]))
    world.ticks_since_decision, world.odometry = 5, np.array([2.0, 0.0, 0.0])  # 0.5 s later, 2 m ahead
    waypoints, path = driver._plan_in_current_frame(world)
    # positions at 1.0 s, 1.5 s, ... after the decision, seen from 2 m further on
    np.testing.assert_allclose(waypoints[:5, 0], [2.0, 4.0, 6.0, 8.0, 10.0])
    np.testing.assert_allclose(path[0], [0.0, 0.0], atol=1e-12)
    world.odometry = np.array([0.0, 0.0, np.pi / 2])  # turned 90 deg clockwise: old forward is now left
    _, path = driver._plan_in_current_frame(world)
    np.testing.assert_allclose(path[0], [0.0, -2.0], atol=1e-12)


def test_temporal_memory_is_per_world_and_reset_at_episode_start():
    class Remembering(CorridorPolicy):
        """Memory = number of decisions so far in this episode (a (1,) tensor; mask marks it valid)."""

        seen = []

        def preprocess(self, obs_list, memory=None):
            batch = super().preprocess(obs_list)
            batch["count"] = memory["count"] if memory is not None else torch.zeros(len(obs_list), 1)
            self.seen.append(batch["count"][:, 0].tolist())
            return batch

        def act(self, batch, sample=True, temperature=1.0, decision=None):
            out = super().act(batch, decision=torch.full((len(batch["obs"]),), 3))
            out.memory = {"count": batch["count"] + 1}
            return out

    policy = Remembering()
    results = []
    make_driver(policy, worlds=2, max_ticks=12, record_traces=True).run([1, 2, 3], on_episode_end=results.append)
    # 12 ticks = decisions at ticks 0, 5, 10 per episode; world 0 then starts episode 3 from zero
    assert policy.seen[:3] == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]] and policy.seen[3] == [0.0]
    assert results[0].trace.memory[0] is None and float(results[0].trace.memory[2]["count"][0]) == 2.0


def test_act_output_contract_is_used():
    out = CorridorPolicy().act(CorridorPolicy().preprocess([CorridorEnv().reset(seed=0)[0]]), sample=False)
    assert isinstance(out, ActOutput) and out.speed_waypoints.shape == (1, 6, 2) and out.path.shape == (1, 10, 2)


def test_cameras_render_only_for_deciding_worlds_and_unloaded_worlds_do_not_crash():
    from minddrive.eval.closed_loop import ConstantPolicy
    from minddrive.sim.vector import VecDriveEnv

    vec = VecDriveEnv(2, render=True, image_size=(32, 56))
    blank = vec.render_cameras([1])["images"]          # world 1 was never loaded: black, not a crash
    assert blank.shape == (1, 6, 32, 56, 3) and blank.max() == 0
    rendered, seen = [], []
    original = vec.render_cameras
    vec.render_cameras = lambda indices: rendered.append(list(indices)) or original(indices)

    class Recording(ConstantPolicy):
        def act(self, batch, **kwargs):
            seen.append([obs["images"].shape for obs in batch])
            return super().act(batch, **kwargs)

    class Stop(Exception):
        pass

    ticks = []

    def on_tick():
        ticks.append(1)
        if len(ticks) == 12:
            raise Stop

    driver = PolicyDriver(vec, Recording(), decision_interval=5)
    with pytest.raises(Stop):
        driver.run([dict(seed=3, options={"scenario": "Accident"})], on_tick=on_tick)
    # one job on two worlds: only world 0 is rendered, and only at its decision ticks 0, 5, 10
    assert rendered == [[0], [0], [0]] and seen == [[(6, 32, 56, 3)]] * 3
    assert "images" not in vec._observe()               # stepping itself renders nothing
