"""The leaderboard's infraction criteria for the CARLA backend, fed with plain numbers (no carla objects).

Leaderboard criteria (scenario_runner is not pip-installable), as approximated here:

==========================  ================================================================
collisions_*                exact rule: ``sensor.other.collision`` events, classified by the other
                            actor's ``type_id``, de-duplicated (same actor within 5 s or within
                            5 m of the last one) as ``CollisionTest``
red_light                   approximate: ego moving (> 0.5 m/s) while ``Vehicle.is_at_traffic_light()``
                            and its light is Red, once per light id (the leaderboard tests the
                            stop-line crossing of the ego's tail instead)
stop_infraction             not checked (needs stop-sign trigger volumes; 0 here)
outside_route_lanes         approximate: share of the distance driven with no Driving lane under the
                            ego (``Map.get_waypoint(loc, project_to_road=False)`` is None); the
                            leaderboard also counts wrong-direction lanes and lane_width/2 + 0.5 m
route_dev                   exact rule: > 30 m from the route (``InRouteTest`` offroad_max), terminates
vehicle_blocked             exact rule: speed < 0.1 m/s for > 60 s (``ActorBlockedTest``), terminates
route completion            as ``RouteCompletionTest``: monotonic projection on the 1 m route; done
                            when > 99 % and within 10 m of the last point
min_speed_infractions       not produced (unused by Bench2Drive's score); scenario_timeouts and
                            yield_emergency_vehicle_infractions need scenario behaviours: not produced
tick limit                  4000 ticks (200 s at 20 Hz) -> "Failed - TickRuntime" as Bench2Drive
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from minddrive.constants import COLLISION_DEDUPE_METRES, COLLISION_DEDUPE_SECONDS, INFRACTION_KEYS
from minddrive.sim.records import route_record, score_penalty
from minddrive.sim.routes import RouteSpec

OFFROAD_MAX = 30.0                     # InRouteTest: metres off the route that end the episode
BLOCKED_SPEED, BLOCKED_TIME = 0.1, 60.0


def collision_key(type_id: str) -> str | None:
    """Leaderboard CollisionTest classification of the other actor (None: not an infraction)."""
    if "walker" in type_id:
        return "collisions_pedestrian"
    if "vehicle" in type_id:
        return "collisions_vehicle"
    if ("static" in type_id or "traffic" in type_id) and "sidewalk" not in type_id:
        return "collisions_layout"
    return None


class Criteria:
    """The per-route infraction state machine, fed with plain numbers each tick (no carla objects).

    ``events`` holds every infraction message by leaderboard key; ``failure`` the terminating
    status, if any.
    """

    def __init__(self, dt: float):
        self.dt = dt
        self.events: dict[str, list[str]] = {key: [] for key in INFRACTION_KEYS}
        self.failure: str | None = None
        self._last_collision: tuple[float, int, np.ndarray] | None = None
        self._blocked_for = 0.0
        self._red_lights: set[int] = set()
        self._outside_m = 0.0
        self._driven_m = 0.0

    def _add(self, key: str, message: str, fired: list) -> None:
        self.events[key].append(message)
        fired.append((key, message))

    def collision(self, time_s: float, other_type: str, other_id: int, location: Sequence[float], fired: list) -> None:
        key = collision_key(other_type)
        if key is None:
            return
        loc = np.asarray(location, dtype=float)
        if self._last_collision is not None:
            last_t, last_id, last_loc = self._last_collision
            if (other_id == last_id and time_s - last_t < COLLISION_DEDUPE_SECONDS) or \
                    np.linalg.norm(loc - last_loc) < COLLISION_DEDUPE_METRES:
                return
        self._last_collision = (time_s, other_id, loc)
        x, y, z = (round(float(v), 3) for v in loc)
        self._add(key, f"Agent collided against object with type={other_type} and id={other_id} "
                       f"at (x={x}, y={y}, z={z})", fired)

    def red_light(self, light_id: int, is_red: bool, at_light: bool, speed: float, location: Sequence[float],
                  fired: list) -> None:
        if is_red and at_light and speed > 0.5 and light_id not in self._red_lights:
            self._red_lights.add(light_id)
            x, y, z = (round(float(v), 3) for v in location)
            self._add("red_light", f"Agent ran a red light {light_id} at (x={x}, y={y}, z={z})", fired)

    def progress(self, speed: float, off_route_m: float, outside_lanes: bool, step_m: float,
                 location: Sequence[float], fired: list) -> None:
        """Blocked / deviation / outside-lanes bookkeeping for one tick."""
        x, y, z = (round(float(v), 3) for v in location)
        self._blocked_for = self._blocked_for + self.dt if speed < BLOCKED_SPEED else 0.0
        self._driven_m += step_m
        if outside_lanes:
            self._outside_m += step_m
        if off_route_m > OFFROAD_MAX and self.failure is None:
            self._add("route_dev", f"Agent deviated from the route at (x={x}, y={y}, z={z})", fired)
            self.failure = "Failed - Agent deviated from the route"
        if self._blocked_for > BLOCKED_TIME and self.failure is None:
            self._add("vehicle_blocked", f"Agent got blocked at (x={x}, y={y}, z={z})", fired)
            self.failure = "Failed - Agent got blocked"

    def finalize(self) -> None:
        """Write the one, updated ``outside_route_lanes`` event as the leaderboard does at the end."""
        if self._outside_m > 0 and self._driven_m > 0:
            pct = 100.0 * self._outside_m / self._driven_m
            self.events["outside_route_lanes"] = [
                f"Agent went outside its route lanes for about {round(self._outside_m, 3)} meters "
                f"({round(pct, 2)}% of the completed route)"]

    @property
    def outside_percent(self) -> float:
        return 100.0 * self._outside_m / self._driven_m if self._driven_m > 0 else 0.0

    def penalty(self) -> float:
        """Leaderboard 2.0 / Bench2Drive multiplicative penalty (docs/bench2drive.md#route-score)."""
        return score_penalty(self.events, self.outside_percent)


def build_route_record(route: RouteSpec, criteria: Criteria, completion: float, status: str | None,
                       route_length: float, duration_game: float, duration_system: float, weather_id: str | None,
                       save_name: str = "", repetition: int = 0) -> dict:
    """The leaderboard ``RouteRecord`` (docs/bench2drive.md#result-files) from the criteria state, via ``sim.records``.

    ``status``: a terminating ``"Failed - <reason>"`` or None (Completed/Perfect/Failed from the scores).
    """
    failure = status.split(" - ", 1)[1] if status and " - " in status else None
    return route_record(index=route.index, route_id=route.route_id(repetition), scenario_name=route.scenario_name,
                        weather_id=weather_id, town=route.town, infractions=criteria.events,
                        route_completion=completion, outside_lanes_percentage=criteria.outside_percent,
                        failure=failure, route_length=route_length, duration_game=duration_game,
                        duration_system=duration_system, save_name=save_name or None)


__all__ = ["Criteria", "build_route_record", "collision_key"]
