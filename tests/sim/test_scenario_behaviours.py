"""Scenario types behave as their Bench2Drive classes do (trigger, placement, timing)."""

import numpy as np
import pytest

from minddrive.sim.env import EmbeddedDriveEnv


@pytest.mark.parametrize("distance", [26.0, 30.0])
def test_emergency_vehicle_appears_distance_behind_the_trigger_at_ego_speed_plus_25_kmh(distance):
    """Before: it started 60 m behind the route start from standstill."""
    env = EmbeddedDriveEnv()
    env.reset(seed=1, options={"scenario": "YieldToEmergencyVehicle", "params": {"distance": distance}})
    core = env.core
    while not core.actors.started[0, 0]:
        env.step([0.0, 0.0, 0.0] if core.speed[0] > 6.0 else [0.0, 0.4, 0.0])
    # Measured after the tick it started in: it has moved one tick (about 1.4 m) since.
    behind = -core._ahead_of_ego()[0, 0] + 0.1 * core.actors.speed[0, 0]
    assert behind == pytest.approx(distance + (core.progress[0] - 15.0), abs=0.6)
    assert core.actors.speed[0, 0] == pytest.approx(core.speed[0] + 25 / 3.6, abs=1.0)   # less its first IDM tick


def test_a_driver_that_does_not_make_way_fails_to_yield_10_s_after_the_vehicle_closes_in():
    env = EmbeddedDriveEnv()
    env.reset(seed=1, options={"scenario": "YieldToEmergencyVehicle"})
    core, when = env.core, None
    for _ in range(2000):
        _, _, term, _, info = env.step([0.0, 0.4 if core.speed[0] < 6.0 else 0.0, 0.0])
        if any(k == "yield_emergency_vehicle_infractions" for k, _ in info["events"]):
            when = float(core.time[0])
        if term:
            break
    near = float(core.criteria.ev_near_time[0])
    assert when is not None and when - near == pytest.approx(10.0, abs=0.15)
