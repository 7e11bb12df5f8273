import numpy as np
import pytest

from minddrive.constants import SPEED_ACTIONS
from minddrive.sim.controller import MAX_THROTTLE, PIDController, ScriptedActionExpert, decision_to_plan, speed_profile
from minddrive.sim.env import EmbeddedDriveEnv
from minddrive.sim.expert import label_speed_action


def straight_plan(speed):
    path = np.stack([np.arange(1, 11) * 2.0, np.zeros(10)], 1)
    wps = np.stack([np.arange(1, 7) * 0.5 * speed, np.zeros(6)], 1)
    return path, wps


def test_pid_throttle_capped_brakes_for_stop_and_steers_towards_the_path():
    pid = PIDController()
    path, wps = straight_plan(8.0)
    control = pid(path, wps, speed=0.0)
    assert control[1] == pytest.approx(MAX_THROTTLE) and control[2] == 0.0 and abs(control[0]) < 1e-9
    _, stop = straight_plan(0.0)
    assert pid(path, stop, speed=5.0)[2] > 0.5
    right = np.stack([np.arange(1, 11) * 2.0, np.arange(1, 11) * 0.6], 1)
    assert pid(right, wps, speed=5.0)[0] > 0.05          # y right -> positive (right) steer
    with pytest.raises(ValueError):
        pid(path, wps[:3], speed=1.0)


@pytest.mark.parametrize("index", range(7))
def test_every_meta_action_plan_is_labelled_as_itself(index):
    start = {0: 7.0, 1: 4.0, 2: 3.0, 3: 6.0, 4: 7.0, 5: 12.0, 6: 13.0}[index]
    speeds = speed_profile(start, index, speed_limit=13.9)
    assert label_speed_action(start, speeds, 0.5) == index, SPEED_ACTIONS[index]


def test_decision_to_plan_follows_the_route_and_drives_the_env():
    env = EmbeddedDriveEnv()
    obs, _ = env.reset(seed=0, options={"scenario": "VanillaSignalizedTurnEncounterGreenLight"})
    plan = decision_to_plan(obs, 3)
    assert plan["path"].shape == (10, 2) and plan["speed_waypoints"].shape == (6, 2)
    assert np.all(np.diff(plan["speed_waypoints"][:, 0]) > 0)
    agent = ScriptedActionExpert(speed_action_index=0)      # maintain moderate speed
    for _ in range(150):
        obs, _, term, _, info = env.step(agent.act(obs))
    assert 4.5 <= obs["ego_state"][0] <= 10.5 and info["route_completion"] > 40
    stopper = ScriptedActionExpert(speed_action_index=1)
    for _ in range(40):
        obs, _, term, _, _ = env.step(stopper.act(obs))
    assert obs["ego_state"][0] < 0.2
