"""Write leaderboard checkpoint JSONs for scripted routes with the leaderboard's own StatisticsManager.

The scorer's tests need raw per-process checkpoints (``_checkpoint.global_record``, ``progress``,
``entry_status``, ``sensors``, ``values``, ``labels``) written by the real leaderboard code, but the
checkpoints published by others cannot be redistributed here. This script replays scripted routes
(infraction events, route completion, durations) through Bench2Drive's
``leaderboard/utils/statistics_manager.py`` in the call order of ``leaderboard_evaluator.py`` and keeps
what it writes, so the scores, rounding and per-km rates are the leaderboard's, not ours.

Usage (tests never run it; they read the committed output)::

    python tools/make_leaderboard_checkpoints.py --bench2drive-root PATH/TO/Bench2Drive \
        --out tests/fixtures/leaderboard_checkpoints

Needs ``dictor`` and ``requests`` (imported by the leaderboard modules); no CARLA server and no
``carla`` package: the statistics code only reads event objects and route locations, which are given here
as plain Python objects. Tested against Bench2Drive 0.0.4 (commit 7ec25d1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

#: the leaderboard's sensor icons for the Bench2Drive rig (6 cameras, IMU, GNSS, speedometer)
SENSOR_ICONS = ["carla_camera"] * 6 + ["carla_imu", "carla_gnss", "carla_speedometer"]


class Location:
    """What ``compute_route_length`` needs of ``carla.Location``: subtraction and ``length()``."""

    def __init__(self, x: float, y: float, z: float = 0.0):
        self.x, self.y, self.z = x, y, z

    def __sub__(self, other: "Location") -> "Location":
        return Location(self.x - other.x, self.y - other.y, self.z - other.z)

    def length(self) -> float:
        return math.sqrt(self.x ** 2 + self.y ** 2 + self.z ** 2)


class Transform:
    def __init__(self, location: Location):
        self.location = location


class TimeoutNode:
    def __init__(self, timeout: bool):
        self.timeout = timeout


class Criterion:
    """A criteria node as the statistics manager sees it: a list of ``TrafficEvent``."""

    def __init__(self, events: list):
        self.events = events


class Scenario:
    """The parts of a ``RouteScenario`` that ``StatisticsManager`` reads."""

    def __init__(self, route: list, criteria: list, timed_out: bool):
        self.route = route
        self.timeout_node = TimeoutNode(timed_out)
        self._criteria = criteria

    def get_criteria(self) -> list:
        return self._criteria


def polyline(points: list[tuple[float, float, float]], spacing: float = 1.0) -> list:
    """Dense ``(transform, road option)`` pairs along straight segments, as the route interpolation gives."""
    route = []
    for (x0, y0, z0), (x1, y1, z1) in zip(points[:-1], points[1:]):
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / spacing))
        for k in range(steps):
            t = k / steps
            route.append((Transform(Location(x0 + t * (x1 - x0), y0 + t * (y1 - y0), z0 + t * (z1 - z0))), None))
    route.append((Transform(Location(*points[-1])), None))
    return route


def scripted_routes(events) -> list[dict]:
    """Routes covering every penalty kind, a percentage penalty, the min-speed checks and each failure path.

    ``events`` is upstream's ``traffic_events`` module; each route lists its criteria as event lists.
    """
    T, E = events.TrafficEventType, events.TrafficEvent

    def event(kind, frame, message, **data):
        return E(event_type=kind, frame=frame, message=message, dictionary=data or None)

    def completion(percent):
        return event(T.ROUTE_COMPLETION, 0, f"Agent has completed {percent} of the route", route_completed=percent)

    def min_speed(percent):
        return event(T.MIN_SPEED_INFRACTION, 0, f"Average speed is {percent}% of the surrounding traffic's one",
                     percentage=percent)

    def collision(kind, type_id, actor_id, x, y, z):
        return event(kind, 0, f"Agent collided against object with type={type_id} and id={actor_id} "
                              f"at (x={x}, y={y}, z={z})")

    return [
        dict(  # finishes the route with a vehicle collision, a red light and some driving outside its lanes
            file="checkpoint_route2201.json", name="RouteScenario_2201", repetition=0, index=0, total=1,
            scenario="EnterActorFlow_1", town="Town12", weather="11", time="06_11_20_45_54",
            route=polyline([(900.0, 3600.0, 370.8), (918.0, 3680.0, 370.8), (925.0, 3705.0, 370.7)]),
            durations=(178.254, 41.3), timed_out=False, failure="",
            criteria=[
                [collision(T.COLLISION_VEHICLE, "vehicle.mercedes.coupe_2020", 3940, 918.846, 3679.969, 370.797)],
                [event(T.TRAFFIC_LIGHT_INFRACTION, 0, "Agent ran a red light 847 at (x=923.263, y=3702.401, z=370.73)")],
                [event(T.OUTSIDE_ROUTE_LANES_INFRACTION, 0, "Agent went outside its route lanes for about 4.127 "
                       "meters (4.99% of the completed route)", percentage=4.99, distance=4.127)],
                [min_speed(167.7), min_speed(37.4), min_speed(2684.77)],
                [completion(100.0)],
            ]),
        dict(  # stops behind a parked car until the blocked-vehicle criterion ends the route
            file="checkpoint_route24041.json", name="RouteScenario_24041", repetition=0, index=0, total=1,
            scenario="ParkedObstacle_3", town="Town13", weather="2", time="06_12_03_10_07",
            route=polyline([(-120.0, 5410.0, 0.0), (-120.0, 5210.0, 0.0), (-20.0, 5210.0, 0.0)]),
            durations=(96.512, 52.65), timed_out=False, failure="",
            criteria=[
                [event(T.VEHICLE_BLOCKED, 0, "Agent got blocked at (x=-120.004, y=5262.188, z=0.02)")],
                [min_speed(61.35)],
                [completion(49.13)],
            ]),
        dict(  # a three-route process: a perfect route, a timed-out one, one with the remaining penalties
            file="checkpoint_3routes.json", name="RouteScenario_1790", repetition=0, index=0, total=3,
            scenario="YieldToEmergencyVehicle_1", town="Town12", weather="4", time="06_12_09_00_01",
            route=polyline([(0.0, 0.0, 0.0), (0.0, 250.0, 0.0)]),
            durations=(80.0, 20.05), timed_out=False, failure="",
            criteria=[[min_speed(95.0), min_speed(104.5)], [completion(100.0)]]),
        dict(
            file="checkpoint_3routes.json", name="RouteScenario_1795", repetition=0, index=1, total=3,
            scenario="PedestrianCrossing_2", town="Town12", weather="7", time="06_12_09_05_42",
            route=polyline([(10.0, 0.0, 0.0), (10.0, 120.0, 0.0), (90.0, 120.0, 0.0)]),
            durations=(140.7, 60.0), timed_out=True, failure="",
            criteria=[
                [collision(T.COLLISION_PEDESTRIAN, "walker.pedestrian.0015", 512, 10.4, 96.1, 0.2)],
                [event(T.STOP_INFRACTION, 0, "Agent ran a stop with id=233 at (x=10.0, y=118.0, z=0.0)")],
                [completion(71.44)],
            ]),
        dict(
            file="checkpoint_3routes.json", name="RouteScenario_1801", repetition=0, index=2, total=3,
            scenario="YieldToEmergencyVehicle_2", town="Town12", weather="0", time="06_12_09_11_13",
            route=polyline([(300.0, 0.0, 0.0), (300.0, 400.0, 0.0)]),
            durations=(210.3, 66.2), timed_out=False, failure="",
            criteria=[
                [collision(T.COLLISION_STATIC, "static.prop.trafficcone01", 77, 300.5, 120.2, 0.0),
                 collision(T.COLLISION_STATIC, "static.prop.trafficcone01", 78, 300.6, 121.0, 0.0)],
                [event(T.YIELD_TO_EMERGENCY_VEHICLE, 0, "Agent failed to yield to an emergency vehicle")],
                [event(T.SCENARIO_TIMEOUT, 0, "Agent timed out a scenario")],
                [event(T.OUTSIDE_ROUTE_LANES_INFRACTION, 0, "Agent went outside its route lanes for about 31.5 "
                       "meters (7.88% of the completed route)", percentage=7.88, distance=31.5)],
                [completion(100.0)],
            ]),
    ]


def write_checkpoints(root: Path, out: Path) -> list[Path]:
    sys.path[:0] = [str(root / "leaderboard"), str(root / "scenario_runner")]
    from leaderboard.utils.statistics_manager import StatisticsManager
    from srunner.scenariomanager import traffic_events

    out.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[dict]] = {}
    for route in scripted_routes(traffic_events):
        by_file.setdefault(route["file"], []).append(route)
    written = []
    for name, routes in by_file.items():
        endpoint = out / name
        endpoint.write_text("")
        manager = StatisticsManager(str(endpoint), str(out / "live_results.txt"))
        manager.clear_records()
        manager.save_progress(0, len(routes))
        manager.write_statistics()
        for route in routes:  # the per-route sequence of leaderboard_evaluator._load_and_run_scenario
            route_name = f"{route['name']}_rep{route['repetition']}"
            save_name = f"{route_name}_{route['town']}_{route['scenario']}_{route['weather']}_{route['time']}"
            manager.create_route_data(route_name, route["scenario"], route["weather"], save_name, route["town"],
                                      route["index"])
            manager.set_scenario(Scenario(route["route"], [Criterion(e) for e in route["criteria"]],
                                          route["timed_out"]))
            manager.save_sensors(SENSOR_ICONS)
            manager.write_statistics()
            manager.save_entry_status("Started")
            manager.compute_route_statistics(route["index"], *route["durations"], route["failure"])
            manager.remove_scenario()
            manager.save_progress(route["index"] + 1, len(routes))
            manager.write_statistics()
        manager.compute_global_statistics()
        manager.validate_and_write_statistics(sensors_initialized=True, crashed=False)
        # Re-indent for readable diffs; the values are exactly what the leaderboard wrote.
        endpoint.write_text(json.dumps(json.loads(endpoint.read_text()), indent=2) + "\n")
        written.append(endpoint)
    (out / "live_results.txt").unlink(missing_ok=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench2drive-root", required=True, type=Path,
                        help="a Bench2Drive checkout (with leaderboard/ and scenario_runner/)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/leaderboard_checkpoints"))
    args = parser.parse_args(argv)
    manager_file = args.bench2drive_root / "leaderboard" / "leaderboard" / "utils" / "statistics_manager.py"
    if not manager_file.is_file():
        parser.error(f"{manager_file}: not found (is --bench2drive-root a Bench2Drive checkout?)")
    for path in write_checkpoints(args.bench2drive_root, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
