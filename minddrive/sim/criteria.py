"""Leaderboard criteria with Bench2Drive semantics, evaluated for W worlds at once.

Each tick :meth:`RouteCriteria.update` gets the batch's ego state and what the world computed
(route progress, lateral offset, box overlaps, light states) and appends leaderboard messages
to per-world infraction lists. Checks are array operations; Python loops run only over the
worlds where something fired. Semantics (BENCH2DRIVE.md §3.1):

* RouteCompletion: best progress along the route; exactly 100 once > 99 % and < 10 m from the end.
* Collision: pedestrian / vehicle / layout (static props), deduplicated per other actor within
  5 s or within 5 m of the last collision, ignored while the ego stands (< 0.1 m/s).
* RunningRedLight: the ego's tail crosses the stop line of its light while it is red.
* RunningStop: crossing a stop line without having stood (< 0.1 m/s) in the zone before it.
* OutsideRouteLanes: metres of route driven with the centre outside the same-direction lanes
  (beyond the centre line, or > 0.5 m past the kerb-side lane edge); one message, updated.
* MinimumSpeed (Bench2Drive): a message at every 1/20 of the route, plus one at the end if
  progress > 95 %; the value is ego mean speed / background mean speed x 100, or 100 without
  background traffic. It carries no penalty.
* YieldToEmergencyVehicle: the emergency vehicle is still behind when the scenario zone ends.
* ScenarioTimeout: the ego spends more than ``SCENARIO_TIMEOUT`` s inside the scenario zone.
* InRoute (terminates): > 30 m off the route. ActorBlocked (terminates): standing still for
  ``blocked_seconds``. The leaderboard uses 60 s on routes of about 1 km; our routes are
  150-300 m, so the default is 40 s -- still longer than any red phase or flow gap.
* RouteTimeout (terminates) and the tick limit (200 s of game time -> 'Failed - TickRuntime').
"""

from __future__ import annotations

import numpy as np

from minddrive.constants import INFRACTION_KEYS

COLLISION_DEDUPE_SECONDS = 5.0
COLLISION_DEDUPE_METRES = 5.0
MIN_SPEED = 0.1                 # m/s, "standing" for collisions, stop signs and blocking
STOP_ZONE = 6.0                 # m of route before a stop line where the ego must stand
OFF_ROUTE_MAX = 30.0            # m, InRouteTest offroad_max
ROUTE_END_DISTANCE = 10.0       # m, RouteCompletionTest
MIN_SPEED_CHECKPOINTS = 20
SCENARIO_TIMEOUT = 60.0         # s inside a scenario zone
TICK_LIMIT_SECONDS = 200.0      # Bench2Drive: 4000 ticks at 20 Hz
SECONDS_PER_METRE = 0.8         # route timeout budget (leaderboard-style), plus a fixed allowance
ROUTE_TIMEOUT_BASE = 30.0


def _at(x: float, y: float) -> str:
    return f"(x={round(float(x), 3)}, y={round(float(y), 3)}, z={0.0})"


class RouteCriteria:
    """Infraction lists and criterion state of W worlds (index ``w``)."""

    def __init__(self, worlds: int, slots: int, blocked_seconds: float = 40.0):
        self.blocked_seconds = float(blocked_seconds)
        f = lambda v=0.0: np.full(worlds, v, dtype=np.float64)
        self.route_len, self.progress, self.completion = f(1.0), f(), f()
        self.outside_m, self.stopped_since = f(), f(np.nan)
        self.light_id = np.full(worlds, -1)
        self.light_stop_s, self.stop_sign_s, self.stop_sign_done = f(np.inf), f(np.inf), np.zeros(worlds, bool)
        self.stood_at_sign = np.zeros(worlds, bool)
        self.zone = np.zeros((worlds, 2))
        self.lane_off = np.zeros((worlds, 2))
        self.zone_entered, self.scenario_timed_out = f(np.nan), np.zeros(worlds, bool)
        self.ev_slot, self.ev_checked = np.full(worlds, -1), np.zeros(worlds, bool)
        self.route_timeout = f(np.inf)
        self.last_hit_time = np.full((worlds, slots), -np.inf)
        self.last_hit_xy = np.full((worlds, 2), np.inf)
        self.next_checkpoint = np.zeros(worlds, int)
        self.speed_sum, self.speed_n, self.bg_sum, self.bg_n = f(), f(), f(), f()
        self.done = np.zeros(worlds, bool)
        self.failure: list[str | None] = [None] * worlds
        self.infractions: list[dict[str, list[str]]] = [{k: [] for k in INFRACTION_KEYS} for _ in range(worlds)]

    def reset_world(self, w: int, route_len: float, light_stop_s: float, stop_sign_s: float,
                    zone: tuple[float, float], lane_off: tuple[float, float], ev_slot: int, light_id: int = -1) -> None:
        self.light_id[w] = light_id
        self.route_len[w], self.progress[w], self.completion[w] = route_len, 0.0, 0.0
        self.outside_m[w], self.stopped_since[w] = 0.0, np.nan
        self.light_stop_s[w], self.stop_sign_s[w] = light_stop_s, stop_sign_s
        self.stop_sign_done[w], self.stood_at_sign[w] = False, False
        self.zone[w], self.lane_off[w] = zone, lane_off
        self.zone_entered[w], self.scenario_timed_out[w] = np.nan, False
        self.ev_slot[w], self.ev_checked[w] = ev_slot, False
        self.route_timeout[w] = ROUTE_TIMEOUT_BASE + SECONDS_PER_METRE * route_len
        self.last_hit_time[w], self.last_hit_xy[w] = -np.inf, np.inf
        self.next_checkpoint[w] = 1
        self.speed_sum[w] = self.speed_n[w] = self.bg_sum[w] = self.bg_n[w] = 0.0
        self.done[w], self.failure[w] = False, None
        self.infractions[w] = {k: [] for k in INFRACTION_KEYS}

    @property
    def outside_percentage(self) -> np.ndarray:
        return 100.0 * self.outside_m / np.maximum(self.route_len, 1e-6)

    def _add(self, w: int, key: str, message: str, events: list) -> None:
        self.infractions[w][key].append(message)
        events[w].append((key, message))

    def update(self, time, live, ego, progress, lateral, lane_lo, lane_hi, in_junction, dist_to_route,
               dist_to_end, hits, actor_kind, actor_ids, actor_type_ids, actor_xy_ego_fwd, light_red, bg_speed) -> list:
        """Advance every criterion of the ``live`` worlds one tick; returns per-world event lists.

        ``ego``: dict of (W,) arrays x, y, speed, half_length. ``hits`` (W, M) box overlaps;
        ``actor_xy_ego_fwd`` (W, M) signed distance of each actor ahead of the ego;
        ``light_red`` (W,) whether the ego's light is red; ``bg_speed`` (W, 2) sum and count of
        background-vehicle speeds this tick.
        """
        W = len(live)
        events: list[list] = [[] for _ in range(W)]
        speed, x, y = ego["speed"], ego["x"], ego["y"]
        prev = self.progress.copy()
        self.progress = np.where(live, np.maximum(self.progress, progress), self.progress)
        advanced = self.progress - prev

        # Collisions (deduplicated per actor and per place).
        fresh = hits & live[:, None] & (speed[:, None] >= MIN_SPEED) & (time[:, None] - self.last_hit_time >= COLLISION_DEDUPE_SECONDS)
        for w, m in zip(*np.nonzero(fresh)):
            if np.hypot(x[w] - self.last_hit_xy[w, 0], y[w] - self.last_hit_xy[w, 1]) < COLLISION_DEDUPE_METRES and \
                    time[w] - self.last_hit_time[w].max() < COLLISION_DEDUPE_SECONDS:
                continue
            kind = actor_kind[w][m]
            key = "collisions_pedestrian" if kind == "walker" else "collisions_layout" if kind in ("prop",) or \
                actor_type_ids[w][m].startswith("static") else "collisions_vehicle"
            self._add(w, key, f"Agent collided against object with type={actor_type_ids[w][m]} and id={actor_ids[w][m]} at {_at(x[w], y[w])}", events)
            self.last_hit_time[w, m], self.last_hit_xy[w] = time[w], (x[w], y[w])

        # Red light: the tail crosses the stop line while red.
        tail_prev, tail = prev - ego["half_length"], self.progress - ego["half_length"]
        ran = live & light_red & (tail_prev < self.light_stop_s) & (tail >= self.light_stop_s)
        for w in np.nonzero(ran)[0]:
            self._add(w, "red_light", f"Agent ran a red light {self.light_id[w]} at {_at(x[w], y[w])}", events)

        # Stop sign: stand still inside the zone before the line, or it is an infraction once past it.
        in_zone = (self.progress >= self.stop_sign_s - STOP_ZONE) & (self.progress <= self.stop_sign_s)
        self.stood_at_sign |= live & in_zone & (speed < MIN_SPEED)
        passed = live & ~self.stop_sign_done & (self.progress > self.stop_sign_s + 1.0)
        for w in np.nonzero(passed)[0]:
            self.stop_sign_done[w] = True
            if not self.stood_at_sign[w]:
                self._add(w, "stop_infraction", f"Agent ran a stop with id=2000 at {_at(x[w], y[w])}", events)

        # Outside route lanes: route metres driven while outside the allowed lateral band.
        exempt = in_junction | ((self.progress >= self.lane_off[:, 0]) & (self.progress <= self.lane_off[:, 1]))
        outside = live & ~exempt & ((lateral < lane_lo) | (lateral > lane_hi))
        self.outside_m += np.where(outside, advanced, 0.0)
        for w in np.nonzero(outside & (advanced > 0))[0]:
            metres, pct = self.outside_m[w], self.outside_percentage[w]
            self.infractions[w]["outside_route_lanes"] = [
                f"Agent went outside its route lanes for about {round(metres, 3)} meters ({round(pct, 2)}% of the completed route)"]

        # Scenario zone: timeout and yielding to the emergency vehicle.
        entered = live & np.isnan(self.zone_entered) & (self.progress >= self.zone[:, 0])
        self.zone_entered = np.where(entered, time, self.zone_entered)
        stuck = live & ~self.scenario_timed_out & (time - self.zone_entered > SCENARIO_TIMEOUT) & (self.progress < self.zone[:, 1])
        for w in np.nonzero(stuck)[0]:
            self.scenario_timed_out[w] = True
            self._add(w, "scenario_timeouts", "Agent timed out a scenario", events)

        # Completion, and the terminating criteria.
        # Below 100 until the end is really reached (a car driving off past the route's last point is not done).
        self.completion = np.where(live, np.minimum(100.0 * self.progress / np.maximum(self.route_len, 1e-6), 99.99),
                                   self.completion)
        reached = live & (self.completion > 99.0) & (dist_to_end < ROUTE_END_DISTANCE)
        self.completion = np.where(reached, 100.0, self.completion)
        standing = speed < MIN_SPEED
        self.stopped_since = np.where(standing, np.where(np.isnan(self.stopped_since), time, self.stopped_since), np.nan)
        going = live & ~reached
        blocked = going & standing & (time - self.stopped_since > self.blocked_seconds)
        deviated = going & (dist_to_route > OFF_ROUTE_MAX)
        timed_out = going & (time > self.route_timeout)
        tick_limit = going & (time >= TICK_LIMIT_SECONDS - 1e-9)
        ended = reached | blocked | deviated | timed_out | tick_limit

        # Min speed: Bench2Drive's per-checkpoint messages.
        self.speed_sum += np.where(live, speed, 0.0)
        self.speed_n += live
        self.bg_sum += np.where(live, bg_speed[:, 0], 0.0)
        self.bg_n += np.where(live, bg_speed[:, 1], 0.0)
        checkpoint_due = live & (self.progress >= self.next_checkpoint * self.route_len / MIN_SPEED_CHECKPOINTS)
        final = ended & (self.completion > 95.0)
        for w in np.nonzero(checkpoint_due | final)[0]:
            while self.progress[w] >= self.next_checkpoint[w] * self.route_len[w] / MIN_SPEED_CHECKPOINTS and \
                    self.next_checkpoint[w] <= MIN_SPEED_CHECKPOINTS:
                self.next_checkpoint[w] += 1
            self._min_speed_message(w, events)

        for w in np.nonzero(ended)[0]:
            if self.ev_slot[w] >= 0 and not self.ev_checked[w]:
                self.check_emergency_vehicle(w, actor_xy_ego_fwd[w, self.ev_slot[w]], events)
            if blocked[w]:
                self._add(w, "vehicle_blocked", f"Agent got blocked at {_at(x[w], y[w])}", events)
                self.failure[w] = "Agent got blocked"
            elif deviated[w]:
                self._add(w, "route_dev", f"Agent deviated from the route at {_at(x[w], y[w])}", events)
                self.failure[w] = "Agent deviated from the route"
            elif timed_out[w]:
                self._add(w, "route_timeout", "Route timeout.", events)
                self.failure[w] = "Agent timed out"
            elif tick_limit[w] and not reached[w]:
                self.failure[w] = "TickRuntime"
            self.done[w] = True
        # The emergency vehicle must be ahead when the zone ends.
        zone_over = live & ~self.ev_checked & (self.ev_slot >= 0) & (self.progress >= self.zone[:, 1])
        for w in np.nonzero(zone_over)[0]:
            self.check_emergency_vehicle(w, actor_xy_ego_fwd[w, self.ev_slot[w]], events)
        return events

    def check_emergency_vehicle(self, w: int, ahead: float, events: list) -> None:
        self.ev_checked[w] = True
        if ahead < 0:
            self._add(w, "yield_emergency_vehicle_infractions", "Agent failed to yield to an emergency vehicle", events)

    def _min_speed_message(self, w: int, events: list) -> None:
        ego_mean = self.speed_sum[w] / max(self.speed_n[w], 1)
        if self.bg_n[w] > 0:
            value = round(100.0 * ego_mean / max(self.bg_sum[w] / self.bg_n[w], 1e-6), 2)
        else:
            value = 100
        self._add(w, "min_speed_infractions", f"Average speed is {value}% of the surrounding traffic's one", events)
        self.speed_sum[w] = self.speed_n[w] = self.bg_sum[w] = self.bg_n[w] = 0.0
