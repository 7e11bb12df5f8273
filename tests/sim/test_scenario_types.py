"""Each of Bench2Drive's 44 scenario types has its own behaviour (no type is built as another one), and each
type's defining behaviour happens: who is placed where, what triggers it, and when."""

import numpy as np
import pytest

from minddrive.sim import actors as A
from minddrive.sim.env import EmbeddedDriveEnv
from minddrive.sim.roads import LANE_WIDTH, right_normal
from minddrive.sim.scenarios import SCENARIO_BUILDERS, SCENARIO_TYPES, build_scenario


def _signature(world) -> tuple:
    route = world.route
    lateral = np.round([route.lateral_offset(0, route.points[0])], 1)
    # Each actor: what it is, how it moves, from which side of the junction it comes, how fast it wants to go.
    actors = tuple(sorted((a.kind, a.role, a.mode, a.at_path_end, a.hidden_until_start, round(a.desired_speed / 2),
                           round(float(np.degrees(np.arctan2(a.path[0][1], a.path[0][0]))) / 30) % 12)
                          for a in world.actors))
    return (len(world.network.arms), round(float(np.degrees(route.yaw[-1])) / 45) % 8, len(world.lights),
            len(world.stop_signs), world.light_freeze is not None, len(world.control_noise),
            bool(np.isfinite(world.lane_test_off[0])),
            int((route.road_option >= 5).sum() > 0), tuple(lateral), actors)


def test_all_44_types_have_their_own_builder_and_no_two_build_the_same_world():
    assert len(SCENARIO_TYPES) == 44 and len({id(b) for b in SCENARIO_BUILDERS.values()}) == 44
    signatures = {}
    for t in SCENARIO_TYPES:
        signatures.setdefault(_signature(build_scenario(t, 5)), []).append(t)
    shared = [types for types in signatures.values() if len(types) > 1]
    assert not shared, shared


def _lateral(world, actor) -> float:
    """Offset of a static actor to the right of the ego route at its nearest route point."""
    xy = np.asarray(actor.path)[0]
    i = int(np.argmin(np.linalg.norm(world.route.points - xy, axis=1)))
    return float(np.dot(xy - world.route.points[i], right_normal(world.route.yaw[i])))


@pytest.mark.parametrize("scenario,offset", [("Accident", 0.6 * LANE_WIDTH / 2), ("AccidentTwoWays", 0.6 * LANE_WIDTH / 2),
                                             ("ParkedObstacle", 0.7 * LANE_WIDTH / 2)])
def test_obstacle_cars_are_braked_vehicles_pushed_towards_the_kerb(scenario, offset):
    """Before: props or cars at the lane centre."""
    world = build_scenario(scenario, 3)
    cars = [a for a in world.actors if a.mode == A.MODE_STATIC and a.type_id.startswith("vehicle.")]
    assert len(cars) == (3 if scenario.startswith("Accident") else 1)
    assert all(_lateral(world, a) == pytest.approx(offset, abs=0.05) for a in cars)
    if scenario.startswith("Accident"):   # police car, then wrecks 10 m and 6 m further on
        s = sorted(float(np.argmin(np.linalg.norm(world.route.points - a.path[0], axis=1))) for a in cars)
        assert np.diff(s) == pytest.approx([10, 6], abs=1.01)
        assert cars[0].type_id == "vehicle.dodge.charger_police_2020"
        sign = [a for a in world.actors if a.type_id == "static.prop.warningaccident"][0]
        assert _lateral(world, sign) > LANE_WIDTH   # on the shoulder, off the driving lanes


@pytest.mark.parametrize("scenario", ["ConstructionObstacle", "ConstructionObstacleTwoWays"])
def test_construction_is_a_u_of_cones_across_the_lane_behind_a_warning_sign(scenario):
    world = build_scenario(scenario, 3)
    cones = [a for a in world.actors if a.type_id == "static.prop.constructioncone"]
    sign = [a for a in world.actors if a.type_id == "static.prop.trafficwarning"]
    assert len(sign) == 1 and len(cones) == 11
    lat = np.array([_lateral(world, c) for c in cones])
    s = np.array([np.argmin(np.linalg.norm(world.route.points - c.path[0], axis=1)) for c in cones])
    edge = 0.85 * LANE_WIDTH / 2
    assert (np.abs(np.abs(lat) - edge) < 0.05).sum() == 8          # both sides of the lane
    far = s == s.max()
    # Closed across the lane at the far end: 3 cones between the two sides, at most 0.75 m apart.
    assert far.sum() == 3 and (np.abs(lat[far]) < edge).all() and np.ptp(lat[far]) >= 1.5 - 1e-6
    assert np.argmin(np.linalg.norm(world.route.points - sign[0].path[0], axis=1)) < s.min()


def _drive(scenario, seed, control, ticks=3000, stop=None, params=None):
    env = EmbeddedDriveEnv()
    env.reset(seed=seed, options={"scenario": scenario, "params": params or {}})
    for _ in range(ticks):
        _, _, term, _, info = env.step(control(env))
        if term or (stop and stop(env)):
            break
    return env


def _cruise(v):
    return lambda e: [0.0, 0.5 if e.core.speed[0] < v else 0.0, 0.0]


def test_signalized_left_turn_light_is_red_5_s_then_frozen_green_with_an_endless_oncoming_flow():
    env = _drive("SignalizedJunctionLeftTurn", 2, lambda e: [0.0, 0.0, 1.0], ticks=1)
    core = env.core
    ego = int(core.ego_light[0])
    states = []
    for _ in range(1200):
        env.step([0.0, 0.0, 1.0])
        states.append(int(core.light_state_of(0)[ego]))
    states = np.array(states)
    assert (states[:48] == 0).all() and (states[51:] == 2).all()   # red for 5 s, then green for good (120 s)
    flow = [k for k, a in enumerate(core.worlds[0].actors) if a.role == "flow"]
    assert core.actors.active[0, flow].all()                        # nobody left: the flow loops
    speeds = core.actors.speed[0, flow]
    assert ((speeds > 8.5) & (speeds < 11.5)).mean() > 0.7


def test_vehicle_door_opens_when_the_ego_is_3_s_or_10_m_away():
    seen = {}

    def control(e):
        door = [k for k, a in enumerate(e.core.worlds[0].actors) if a.role == "door"][0]
        if e.core.actors.present[0, door] and "at" not in seen:
            seen["at"] = float(e.core.progress[0]); seen["v"] = float(e.core.speed[0])
        return _cruise(5.0)(e)
    env = _drive("VehicleOpensDoorTwoWays", 4, control, stop=lambda e: "at" in seen, params={"distance": 60.0})
    core = env.core
    door = [a for a in core.worlds[0].actors if a.role == "door"][0]
    assert 60.0 - seen["at"] == pytest.approx(max(10.0, 3.0 * seen["v"]), abs=0.8)
    # The open door reaches into the ego's lane.
    assert _lateral(core.worlds[0], door) - door.extent[1] < A.EGO_EXTENT[1]


def test_door_closed_car_does_not_block_the_lane_before_the_trigger():
    env = _drive("VehicleOpensDoorTwoWays", 4, _cruise(5.0), ticks=20, params={"distance": 60.0})
    door = [k for k, a in enumerate(env.core.worlds[0].actors) if a.role == "door"][0]
    assert not env.core.actors.present[0, door] and env.core.actors.x[0, door] > 1e5


def test_control_loss_perturbs_the_ego_steering_near_each_noise_spot_only():
    env = _drive("ControlLoss", 6, lambda e: [0.0, 0.0, 0.0], ticks=1)
    world = env.core.worlds[0]
    spots = [n[0] for n in world.control_noise]
    assert len(spots) == 3 and all(25 <= s <= 95 for s in spots) and spots == sorted(spots)
    steers = []
    for _ in range(600):
        env.step(_cruise(6.0)(env))
        steers.append((float(env.core.progress[0]), float(env.core.control[0, 0])))
    steers = np.array(steers)
    near = np.min(np.abs(steers[:, :1] - np.array(spots)[None]), axis=1) < 1.9
    assert near.sum() > 3 and (np.abs(steers[near, 1]) > 0.01).mean() > 0.8 and np.abs(steers[near, 1]).mean() > 0.03
    # (progress is read after the tick, so the noisy window looks up to one tick's travel wider)
    far = np.min(np.abs(steers[:, :1] - np.array(spots)[None]), axis=1) > 2.7
    assert (steers[far & (steers[:, 0] < spots[-1] + 5), 1] == 0.0).all()


def test_parking_exit_starts_the_ego_in_a_parking_spot_between_two_parked_cars():
    world = build_scenario("ParkingExit", 3)
    start = world.route.points[0]
    parked = [a for a in world.actors if a.role == "parked"]
    ahead = sorted(float(np.dot(a.path[0] - start, [np.cos(world.route.yaw[0]), np.sin(world.route.yaw[0])]))
                   for a in parked)
    assert ahead == pytest.approx([-10.0, 20.0], abs=0.1)
    lane_centre = world.route.points[40]     # after the merge the route is in the driving lane
    offset0 = float(np.dot(start - lane_centre, right_normal(world.route.yaw[40])))
    assert offset0 > LANE_WIDTH                                    # the spot is right of the driving lane
    assert (world.route.road_option[6:27] == 5).all()              # CHANGELANELEFT: it merges
    assert any(a.role == "side" for a in world.actors) and world.ego_speed == 0.0


def test_sequential_lane_change_route_changes_lane_twice_and_has_no_actors():
    world = build_scenario("SequentialLaneChange", 3)
    changes = np.flatnonzero(np.diff((world.route.road_option == 6).astype(int)) == 1)
    assert len(changes) == 2 and not world.actors


def test_hazard_at_side_lane_bicycles_ride_10_kmh_on_the_kerb_side_for_50_m_then_stop():
    env = _drive("HazardAtSideLane", 3, lambda e: [0.0, 0.0, 1.0], ticks=120)
    core = env.core
    bikes = [k for k, a in enumerate(core.worlds[0].actors) if a.kind == "bicycle"]
    assert len(bikes) == 2
    # The front one rides at 10 km/h; the one 9 m behind it keeps its distance (slightly slower).
    assert core.actors.s[0, bikes[1]] == pytest.approx(10 / 3.6 * 12.0, abs=0.2)
    assert 10 / 3.6 * 12.0 - 5.0 < core.actors.s[0, bikes[0]] <= 10 / 3.6 * 12.0
    env = _drive("HazardAtSideLane", 3, lambda e: [0.0, 0.0, 1.0], ticks=400)
    assert (env.core.actors.mode[0, bikes] == A.MODE_STATIC).all() and env.core.actors.active[0, bikes].all()
    assert env.core.actors.s[0, bikes] == pytest.approx([50.0, 50.0], abs=1.1)


def test_blocked_intersection_blocker_leaves_10_s_after_the_ego_comes_within_13_m():
    world = build_scenario("BlockedIntersection", 2)
    blocker = world.actors[0]
    exit_s = len(world.route.in_junction) - np.argmax(world.route.in_junction[::-1])
    s = float(np.argmin(np.linalg.norm(world.route.points - blocker.path[0], axis=1)))
    assert s - exit_s == pytest.approx(5.0 + A.EGO_EXTENT[1], abs=1.0)
    env = _drive("BlockedIntersection", 2, _cruise(5.0), stop=lambda e: e.core.actors.started[0, 0])
    t0 = float(env.core.time[0])
    assert s - env.core.progress[0] <= 13.0
    for _ in range(200):
        env.step([0.0, 0.0, 1.0])
        if not env.core.actors.active[0, 0]:
            break
    assert float(env.core.time[0]) - t0 == pytest.approx(10.0, abs=0.15)


@pytest.mark.parametrize("scenario,reaction,min_dist", [("DynamicObjectCrossing", 2.1, 6.0),
                                                        ("ParkingCrossingPedestrian", 2.15, 6.0),
                                                        ("PedestrianCrossing", 3.5, 12.0),
                                                        ("VehicleTurningRoute", 1.8, 6.0),
                                                        ("VehicleTurningRoutePedestrian", 2.2, 6.0)])
@pytest.mark.parametrize("speed", [2.0, 8.0])
def test_crossers_start_by_time_to_arrival_or_distance(scenario, reaction, min_dist, speed):
    """Before: at a fixed ego distance."""
    from minddrive.sim.expert import Expert
    env = _drive(scenario, 1, lambda e: [0.0, 0.0, 0.0], ticks=1)
    core, expert = env.core, Expert(env)
    k = [i for i, a in enumerate(core.worlds[0].actors) if a.role == "crossing"][0]
    at = core.worlds[0].actors[k].arrival_point
    core.speed[0] = speed
    for _ in range(2000):   # the expert steers, the speed is held
        steer = float(expert.act()[0])
        env.step([steer, 0.0, 0.0] if core.speed[0] >= speed else [steer, 0.3, 0.0])
        if core.actors.started[0, k]:
            break
    remaining = at - core.progress[0]
    assert remaining == pytest.approx(max(min_dist, reaction * core.speed[0]), abs=0.1 * speed + 0.3)


def test_pedestrian_crossing_walkers_cross_before_the_junction():
    """Before: they crossed after it."""
    for seed in range(4):
        world = build_scenario("PedestrianCrossing", seed)
        junction_s = int(np.argmax(world.route.in_junction))
        for a in world.actors:
            assert junction_s - 4.0 < a.arrival_point < junction_s


def test_parking_crossing_pedestrian_comes_from_between_two_parked_cars():
    world = build_scenario("ParkingCrossingPedestrian", 3)
    parked = [a for a in world.actors if a.role == "parked"]
    walker = [a for a in world.actors if a.role == "crossing"][0]
    s = sorted(float(np.argmin(np.linalg.norm(world.route.points - a.path[0], axis=1))) for a in parked)
    assert s[0] < walker.arrival_point < s[1]
    assert _lateral(world, walker) == pytest.approx(_lateral(world, parked[0]), abs=0.3)


@pytest.mark.parametrize("scenario,source_heading", [("SignalizedJunctionLeftTurnEnterFlow", 90.0),
                                                     ("NonSignalizedJunctionLeftTurnEnterFlow", 90.0),
                                                     ("EnterActorFlow", 270.0), ("InterurbanActorFlow", 0.0)])
def test_flow_types_run_an_endless_flow_into_or_across_the_ego_exit(scenario, source_heading):
    world = build_scenario(scenario, 3)
    flow = [a for a in world.actors if a.role == "flow"]
    assert len(flow) >= 6 and all(a.at_path_end == "loop" for a in flow)
    arm = world.network.arm_by_heading(source_heading)
    assert all(np.linalg.norm(a.path[0] - world.network.lanes[arm.incoming_lanes[0]].points[0]) < 1.0 for a in flow)


def test_interurban_advanced_flow_runs_both_ways_on_the_road_the_ego_enters():
    world = build_scenario("InterurbanAdvancedActorFlow", 3)
    heads = {round(float(np.degrees(np.arctan2(*(a.path[5] - a.path[0])[::-1]))) / 90) % 4 for a in world.actors}
    assert len(heads) == 2 and all(a.at_path_end == "loop" for a in world.actors)


def test_highway_exit_crosses_the_outer_lane_flow_to_turn_off():
    world = build_scenario("HighwayExit", 3)
    assert (world.route.road_option == 6).any()                   # CHANGELANERIGHT, then the exit turn
    flow = [a for a in world.actors if a.role == "flow"]
    assert flow and all(a.at_path_end == "loop" for a in flow)


def test_highway_cut_in_car_merges_from_the_right_into_the_ego_lane():
    world = build_scenario("HighwayCutIn", 3)
    car = world.actors[0]
    assert _lateral(world, ActorSpecAt(car.path[0])) == pytest.approx(LANE_WIDTH, abs=0.2)
    assert abs(_lateral(world, ActorSpecAt(car.path[60]))) < 0.2


class ActorSpecAt:
    def __init__(self, xy):
        self.path = np.asarray(xy)[None]


def test_merger_into_slow_traffic_v2_joins_the_queue_from_the_other_side():
    v1, v2 = build_scenario("MergerIntoSlowTraffic", 3), build_scenario("MergerIntoSlowTrafficV2", 3)
    turn = lambda w: float(np.sin(w.route.yaw[-1] - w.route.yaw[0]))
    assert np.sign(turn(v1)) == -np.sign(turn(v2))
    assert all(a.desired_speed < 5.5 for a in v2.actors)
