"""Each criterion fires exactly when it should, in hand-built one-world situations."""

import numpy as np
import pytest

from minddrive.constants import INFRACTION_KEYS
from minddrive.sim.criteria import RouteCriteria
from minddrive.sim.records import route_record, score_penalty


class Situation:
    """Drive the criteria of one world tick by tick with explicit state."""

    def __init__(self, route_len=200.0, **reset):
        self.c = RouteCriteria(1, 2, blocked_seconds=40.0)
        args = dict(route_len=route_len, light_stop_s=np.inf, stop_sign_s=np.inf, zone=(0.0, np.inf),
                    lane_off=(np.inf, np.inf), ev_slot=-1, light_id=1000)
        args.update(reset)
        self.c.reset_world(0, **args)
        self.t, self.route_len = 0.0, route_len

    def tick(self, progress, speed=5.0, lateral=0.0, hits=(False, False), red=False, lo=-1.75, hi=2.25,
             junction=False, ev_ahead=0.0, bg=(0.0, 0.0), dt=0.1, dist_to_end=None):
        self.t += dt
        return self.c.update(
            time=np.array([self.t]), live=~self.c.done, ego=dict(x=np.array([progress]), y=np.zeros(1),
                                                                  speed=np.array([speed]), half_length=np.array([2.44])),
            progress=np.array([progress]), lateral=np.array([lateral]), lane_lo=np.array([lo]), lane_hi=np.array([hi]),
            in_junction=np.array([junction]), dist_to_route=np.array([abs(lateral)]),
            dist_to_end=np.array([self.route_len - progress if dist_to_end is None else dist_to_end]),
            hits=np.array([hits]), actor_kind=[["vehicle", "walker"]], actor_ids=[[100, 101]],
            actor_type_ids=[["vehicle.audi.a2", "walker.pedestrian.0001"]],
            actor_xy_ego_fwd=np.array([[ev_ahead, 0.0]]), light_red=np.array([red]), bg_speed=np.array([bg]))[0]

    @property
    def infractions(self):
        return self.c.infractions[0]


def test_collisions_are_deduplicated_per_actor_within_5_s_and_ignored_when_standing():
    s = Situation()
    s.tick(10, hits=(True, False))
    for k in range(20):                               # still touching for 2 s: one event
        s.tick(10 + 0.1 * k, hits=(True, False))
    assert len(s.infractions["collisions_vehicle"]) == 1
    assert s.infractions["collisions_vehicle"][0].startswith(
        "Agent collided against object with type=vehicle.audi.a2 and id=100 at (x=10")
    s.tick(12, speed=0.05, hits=(False, True))        # standing ego: a walker bumping into it does not count
    assert s.infractions["collisions_pedestrian"] == []
    for k in range(60):
        s.tick(20 + k, hits=(False, False))
    s.tick(90, hits=(True, False))                    # > 5 s later and far away: a new event
    assert len(s.infractions["collisions_vehicle"]) == 2


def test_red_light_fires_when_the_tail_crosses_the_line_only_if_red():
    s = Situation(light_stop_s=50.0)
    s.tick(51.0, red=True)                            # nose over the line, tail (51 - 2.44) not yet
    assert s.infractions["red_light"] == []
    s.tick(53.0, red=True)
    assert s.infractions["red_light"] == ["Agent ran a red light 1000 at (x=53.0, y=0.0, z=0.0)"]
    s.tick(60.0, red=True)
    assert len(s.infractions["red_light"]) == 1
    green = Situation(light_stop_s=50.0)
    green.tick(51.0)
    green.tick(53.0)
    assert green.infractions["red_light"] == []


@pytest.mark.parametrize("stand", [True, False])
def test_stop_sign_requires_standing_in_the_zone(stand):
    s = Situation(stop_sign_s=50.0)
    s.tick(46.0, speed=0.05 if stand else 2.0)
    s.tick(52.0, speed=3.0)
    assert len(s.infractions["stop_infraction"]) == (0 if stand else 1)


def test_outside_route_lanes_counts_route_metres_and_sets_the_penalty():
    s = Situation(route_len=200.0)
    s.tick(10.0, lateral=0.0)
    for p in range(11, 21):                           # 10 m over the centre line
        s.tick(float(p), lateral=-2.0)
    s.tick(21.0, lateral=2.2)                         # inside kerb tolerance: fine
    s.tick(22.0, lateral=-2.0, junction=True)         # junctions are exempt
    assert s.infractions["outside_route_lanes"] == [
        "Agent went outside its route lanes for about 10.0 meters (5.0% of the completed route)"]
    assert score_penalty(s.infractions, s.c.outside_percentage[0]) == pytest.approx(0.95)


def test_blocked_terminates_after_the_threshold_and_route_completion_reaches_exactly_100():
    s = Situation()
    for _ in range(400):
        s.tick(30.0, speed=0.0)
    assert not s.c.done[0]
    for _ in range(11):
        s.tick(30.0, speed=0.0)
    assert s.c.done[0] and s.c.failure[0] == "Agent got blocked"
    assert s.infractions["vehicle_blocked"] == ["Agent got blocked at (x=30.0, y=0.0, z=0.0)"]
    done = Situation(route_len=200.0)
    done.tick(198.5, dist_to_end=1.5)
    assert done.c.done[0] and done.c.completion[0] == 100.0 and done.c.failure[0] is None


def test_route_deviation_and_min_speed_checkpoints():
    s = Situation(route_len=200.0)
    for p in range(0, 30):
        s.tick(float(p), speed=5.0, bg=(20.0, 2.0))   # background mean 10 m/s -> 50 %
    assert s.infractions["min_speed_infractions"][0] == "Average speed is 50.0% of the surrounding traffic's one"
    assert len(s.infractions["min_speed_infractions"]) == 2   # checkpoints at 10 m and 20 m
    s.tick(30.0, lateral=31.0)
    assert s.c.done[0] and s.c.failure[0] == "Agent deviated from the route"
    lonely = Situation(route_len=100.0)
    for p in range(0, 6):
        lonely.tick(float(p))
    assert lonely.infractions["min_speed_infractions"] == ["Average speed is 100% of the surrounding traffic's one"]


def test_yield_to_emergency_vehicle_checked_when_the_zone_ends():
    s = Situation(zone=(0.0, 50.0), ev_slot=0)
    s.tick(49.0, ev_ahead=-10.0)
    assert s.infractions["yield_emergency_vehicle_infractions"] == []
    s.tick(51.0, ev_ahead=-10.0)
    assert s.infractions["yield_emergency_vehicle_infractions"] == ["Agent failed to yield to an emergency vehicle"]
    ok = Situation(zone=(0.0, 50.0), ev_slot=0)
    ok.tick(51.0, ev_ahead=15.0)
    assert ok.infractions["yield_emergency_vehicle_infractions"] == []


def test_scenario_timeout_and_tick_limit():
    s = Situation(zone=(10.0, 50.0), route_len=400.0)
    s.tick(12.0, dt=0.1)
    s.tick(12.0, speed=1.0, dt=59.0)
    assert s.infractions["scenario_timeouts"] == []
    s.tick(12.5, speed=1.0, dt=1.5)
    assert s.infractions["scenario_timeouts"] == ["Agent timed out a scenario"]
    long = Situation(route_len=1000.0)
    long.tick(10.0, dt=199.85)
    assert not long.c.done[0]
    long.tick(10.5, dt=0.15)
    assert long.c.done[0] and long.c.failure[0] == "TickRuntime"


def test_route_record_has_leaderboard_keys_order_and_scores():
    infractions = {k: [] for k in INFRACTION_KEYS}
    infractions["collisions_vehicle"] = ["x"]
    infractions["red_light"] = ["y"]
    infractions["min_speed_infractions"] = ["Average speed is 100% of the surrounding traffic's one"]
    rec = route_record(index=3, route_id="RouteScenario_7_rep0", scenario_name="HardBreakRoute_1", weather_id=2,
                       town="EmbeddedTown01", infractions=infractions, route_completion=100.0,
                       outside_lanes_percentage=0.0, failure=None, route_length=201.23456, duration_game=30.0,
                       duration_system=1.0)
    assert list(rec) == ["index", "route_id", "scenario_name", "weather_id", "save_name", "status", "num_infractions",
                         "infractions", "scores", "meta", "town_name"]
    assert list(rec["infractions"]) == list(INFRACTION_KEYS)
    assert rec["status"] == "Completed" and rec["num_infractions"] == 3 and rec["weather_id"] == "2"
    assert rec["scores"] == {"score_route": 100.0, "score_penalty": 0.42, "score_composed": 42.0}
    failed = route_record(index=0, route_id="RouteScenario_1_rep0", scenario_name="A_1", weather_id=None, town="T",
                          infractions={}, route_completion=61.234, outside_lanes_percentage=0.0,
                          failure="Agent got blocked", route_length=1.0, duration_game=1.0, duration_system=1.0)
    assert failed["status"] == "Failed - Agent got blocked" and failed["scores"]["score_route"] == 61.23


def test_progress_past_the_end_without_reaching_it_is_not_completion():
    s = Situation(route_len=100.0)
    s.tick(100.0, dist_to_end=25.0)
    assert not s.c.done[0] and s.c.completion[0] == pytest.approx(99.99)
