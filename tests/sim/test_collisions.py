"""Contact has consequences: the ego cannot pass through a car or an obstacle, and what it hits stops."""

import numpy as np
import pytest

from minddrive.sim.env import EmbeddedDriveEnv


def _drive(scenario, seed, control, ticks=2000):
    env = EmbeddedDriveEnv()
    env.reset(seed=seed, options={"scenario": scenario})
    info = {}
    for _ in range(ticks):
        _, _, term, _, info = env.step(control(env))
        if term:
            break
    return env, info


@pytest.mark.parametrize("scenario", ["ParkedObstacle", "Accident", "ConstructionObstacle"])
def test_driving_straight_through_the_obstacle_no_longer_completes_the_route(scenario):
    """Before: DS 65 / 27.5 / 17.9 with the route completed through the obstacle."""
    env, info = _drive(scenario, 0, lambda e: [0.0, 0.5 if e.core.speed[0] < 6 else 0.0, 0.0])
    record = env.route_record()
    assert record["scores"]["score_route"] < 50.0 and record["status"].startswith("Failed")
    collisions = sum(len(record["infractions"][k]) for k in ("collisions_vehicle", "collisions_layout"))
    assert collisions == 1


def test_creeping_into_one_parked_car_counts_one_collision_and_the_car_holds():
    """Before: a contact was counted again every 5 s (8 hits, penalty 0.022)."""
    env, info = _drive("ParkedObstacle", 0, lambda e: [0.0, 0.3 if e.core.speed[0] < 0.5 else 0.0, 0.0])
    record = env.route_record()
    assert record["infractions"]["collisions_vehicle"] and len(record["infractions"]["collisions_vehicle"]) == 1
    assert record["scores"]["score_penalty"] == pytest.approx(0.6)
    core = env.core
    slot = [k for k, a in enumerate(core.worlds[0].actors) if a.role == "blocker"][0]
    # The ego stands at the car's tail: bumper gap under 0.1 m, never through it.
    # (the car stands pushed towards the kerb, so the gap is measured along the ego's heading)
    gap = (core.actors.x[0, slot] - core.x[0]) * np.cos(core.yaw[0]) + \
        (core.actors.y[0, slot] - core.y[0]) * np.sin(core.yaw[0]) - 2.44 - 2.3
    assert -0.05 < gap < 0.1
    assert record["status"] == "Failed - TickRuntime"    # the scenario timeout behaviour keeps ActorBlocked off


def test_a_crossing_walker_hit_by_the_ego_stops_and_the_car_goes_on():
    env, info = _drive("DynamicObjectCrossing", 0, lambda e: [0.0, 0.6 if e.core.speed[0] < 8 else 0.0, 0.0])
    record = env.route_record()
    assert len(record["infractions"]["collisions_pedestrian"]) == 1
    walker = [k for k, a in enumerate(env.core.worlds[0].actors) if a.kind == "walker"][0]
    assert env.core.actors.speed[0, walker] == 0.0 and env.core.actors.mode[0, walker] == 2   # it stays down
    assert record["scores"]["score_route"] > 90.0                                           # the car went on
