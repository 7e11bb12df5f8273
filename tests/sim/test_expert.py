import numpy as np
import pytest

from minddrive.constants import ROAD_OPTION
from minddrive.sim.cli import constant_policy
from minddrive.sim.env import EmbeddedDriveEnv
from minddrive.sim.expert import Expert, label_path_action, label_speed_action


def test_speed_labeller_thresholds():
    assert label_speed_action(5.0, [3, 1, 0, 0, 0, 0], 0.5) == 1            # stop
    assert label_speed_action(10.0, [8, 6, 4, 2, 1, 0.5], 0.5) == 6          # > 3 m/s^2
    assert label_speed_action(8.0, [7.5, 7, 6.5, 6, 5.5, 5], 0.5) == 4       # 1 m/s^2
    assert label_speed_action(4.0, [4.5, 5, 5.5, 6, 6.5, 7], 0.5) == 3
    assert label_speed_action(3.0, [3.0] * 6, 0.5) == 2
    assert label_speed_action(7.0, [7.0] * 6, 0.5) == 0
    assert label_speed_action(12.0, [12.0] * 6, 0.5) == 5


def test_path_labeller():
    assert label_path_action(ROAD_OPTION["LEFT"]) == 2
    assert label_path_action(ROAD_OPTION["LANEFOLLOW"], lane_change=-1) == 3
    assert label_path_action(ROAD_OPTION["STRAIGHT"], lane_change=1) == 5


def drive(scenario, seed, policy):
    env = EmbeddedDriveEnv()
    expert = Expert(env)
    obs, _ = env.reset(seed=seed, options={"scenario": scenario})
    labels = set()
    while True:
        control = expert.act() if policy == "expert" else constant_policy(obs)
        labels.add(expert.last_meta_action if policy == "expert" else None)
        obs, _, term, _, _ = env.step(control)
        if term:
            return env.route_record(), labels


@pytest.mark.parametrize("scenario", ["AccidentTwoWays", "OppositeVehicleRunningRedLight", "YieldToEmergencyVehicle",
                                      "VanillaSignalizedTurnEncounterRedLight"])
def test_expert_solves_what_the_constant_baseline_fails(scenario):
    record, labels = drive(scenario, 7, "expert")
    penalised = {k: v for k, v in record["infractions"].items() if v and k != "min_speed_infractions"}
    assert record["status"] == "Completed" and penalised == {}, penalised
    assert record["scores"]["score_composed"] == 100.0
    assert any(s == 1 for s, _ in labels) or scenario in ("AccidentTwoWays", "YieldToEmergencyVehicle")
    if scenario in ("AccidentTwoWays", "YieldToEmergencyVehicle"):
        assert any(p in (3, 5) for _, p in labels)                  # it changed lanes
    baseline, _ = drive(scenario, 7, "constant")
    assert baseline["scores"]["score_composed"] < 75.0
