"""Leaderboard criteria with Bench2Drive's rules, thresholds and messages, for W worlds at once.

Each tick :meth:`RouteCriteria.update` gets the batch's ego state and what the world computed
(route progress, lateral offset, box contacts, light states, the emergency vehicle's pose) and
appends leaderboard messages to per-world infraction lists. Checks are array operations; Python
loops run only over the worlds where something fired. Each rule, its threshold and the Bench2Drive
source it follows are tabled in ``docs/criteria.md``; in short:

* RouteCompletion: best progress along the route; exactly 100 once > 99 % and < 10 m from the end.
* Collision (CollisionTest): a contact is ignored when it is with the actor of the last counted
  collision less than 5 s ago, or while the ego is still within 5 m of where that collision
  happened (no time limit), or when the ego stands (< 0.1 m/s). The type id names the class:
  ``static``/``traffic`` -> layout, ``vehicle`` -> vehicle, ``walker`` -> pedestrian.
* RunningRedLight: the ego's tail crosses the stop line of its light while it is red.
* RunningStop: crossing a stop line without having stood (< 0.1 m/s) in the zone before it.
* OutsideRouteLanes: route metres driven outside the driving lanes (> 0.5 m past the kerb-side
  lane edge) or in the opposite direction's lane, as a percentage of the metres *completed*. A
  scenario may switch the wrong-direction part off (SwitchWrongDirectionTest); never the kerb part.
* MinimumSpeed (Bench2Drive): a message at every 1/20 of the route, plus one at the end if
  progress > 95 %; the value is ego mean speed / background mean speed x 100, or 100 without
  background traffic. It carries no penalty.
* YieldToEmergencyVehicle: while the scenario runs, the ego fails when it is ahead of the emergency
  vehicle (along the vehicle's heading); judged when the scenario ends (10 s after the vehicle
  first comes within 50 m, or once it is in front and has driven 50 m more) or the route ends.
* ScenarioTimeout: only in the scenario types that run Bench2Drive's ScenarioTimeout behaviour,
  240 s after the scenario triggered while it has not ended.
* InRoute (terminates): > 30 m off the route, or more than 30 % of the route's length driven more
  than 15 m off it. ActorBlocked (terminates): below 0.1 m/s for 60 s since the last tick at speed;
  switched off while a ScenarioTimeout behaviour runs (its clock restarts when switched back on).
* RouteTimeout (terminates): 300 s plus, for every route metre completed, 1 / (10 % of the speed
  limit at the ego) seconds; and the tick limit (200 s of game time -> 'Failed - TickRuntime').
"""

from __future__ import annotations

import numpy as np

from minddrive.constants import COLLISION_DEDUPE_METRES, COLLISION_DEDUPE_SECONDS, INFRACTION_KEYS

MIN_SPEED = 0.1                 # m/s: CollisionTest.EPSILON, ActorBlockedTest min_speed, RunningStop
STOP_ZONE = 6.0                 # m of route before a stop line where the ego must stand
OFF_ROUTE_MAX = 30.0            # m, InRouteTest offroad_max
OFF_ROUTE_MIN = 15.0            # m, InRouteTest offroad_min (half of offroad_max)
OFF_ROUTE_PERCENTAGE = 30.0     # %, InRouteTest.MAX_ROUTE_PERCENTAGE
ROUTE_END_DISTANCE = 10.0       # m, RouteCompletionTest
MIN_SPEED_CHECKPOINTS = 20
BLOCKED_SECONDS = 60.0          # s, ActorBlockedTest max_time (route_scenario.py)
SCENARIO_TIMEOUT = 240.0        # s, the scenario classes' _scenario_timeout
TICK_LIMIT_SECONDS = 200.0      # Bench2Drive: 4000 ticks at 20 Hz
ROUTE_TIMEOUT_BASE = 300.0      # s, RouteTimeoutBehavior.MIN_TIMEOUT
ROUTE_TIMEOUT_SPEED_FRACTION = 0.1  # RouteTimeoutBehavior.TIMEOUT_ROUTE_PERC / 100
EV_NEAR = 50.0                  # m, YieldToEmergencyVehicle._trigger_distance
EV_IDLE = 10.0                  # s, YieldToEmergencyVehicle._ev_idle_time
EV_END_DISTANCE = 50.0          # m, YieldToEmergencyVehicle._end_distance


def _at(x: float, y: float) -> str:
    return f"(x={round(float(x), 3)}, y={round(float(y), 3)}, z={0.0})"


def collision_key(type_id: str) -> str | None:
    """The infraction list a contact with ``type_id`` goes to, as CollisionTest classifies it."""
    if ("static" in type_id or "traffic" in type_id) and "sidewalk" not in type_id:
        return "collisions_layout"
    if "vehicle" in type_id:
        return "collisions_vehicle"
    if "walker" in type_id:
        return "collisions_pedestrian"
    return None


class RouteCriteria:
    """Infraction lists and criterion state of W worlds (index ``w``)."""

    def __init__(self, worlds: int, slots: int, blocked_seconds: float = BLOCKED_SECONDS):
        self.blocked_seconds = float(blocked_seconds)
        f = lambda v=0.0: np.full(worlds, v, dtype=np.float64)
        b = lambda: np.zeros(worlds, bool)
        self.route_len, self.progress, self.completion = f(1.0), f(), f()
        self.outside_m, self.last_moving = f(), f(np.nan)
        self.light_id = np.full(worlds, -1)
        self.light_stop_s, self.stop_sign_s, self.stop_sign_done = f(np.inf), f(np.inf), b()
        self.stood_at_sign = b()
        self.zone = np.zeros((worlds, 2))
        self.lane_off = np.zeros((worlds, 2))
        self.has_timeout, self.zone_entered, self.zone_over, self.scenario_timed_out = b(), f(np.nan), b(), b()
        self.ev_slot, self.ev_checked, self.ev_failing = np.full(worlds, -1), b(), b()
        self.ev_near_time, self.ev_front_s = f(np.nan), f(np.nan)
        self.route_timeout = f(ROUTE_TIMEOUT_BASE)
        self.off_route_m, self.in_safe_route = f(), np.ones(worlds, bool)
        self.hit_slot, self.hit_time = np.full(worlds, -1), f(-np.inf)
        self.hit_xy = np.full((worlds, 2), np.nan)
        self.next_checkpoint = np.zeros(worlds, int)
        self.speed_sum, self.speed_n, self.bg_sum, self.bg_n = f(), f(), f(), f()
        self.done = b()
        self.failure: list[str | None] = [None] * worlds
        self.infractions: list[dict[str, list[str]]] = [{k: [] for k in INFRACTION_KEYS} for _ in range(worlds)]

    def reset_world(self, w: int, route_len: float, light_stop_s: float, stop_sign_s: float,
                    zone: tuple[float, float], lane_off: tuple[float, float], ev_slot: int, light_id: int = -1,
                    scenario_timeout: bool = False) -> None:
        """``zone``: route span from the scenario's trigger to its end; ``lane_off``: span where the
        wrong-direction lane test is off; ``scenario_timeout``: the type runs a ScenarioTimeout behaviour."""
        self.light_id[w] = light_id
        self.route_len[w], self.progress[w], self.completion[w] = route_len, 0.0, 0.0
        self.outside_m[w], self.last_moving[w] = 0.0, np.nan
        self.light_stop_s[w], self.stop_sign_s[w] = light_stop_s, stop_sign_s
        self.stop_sign_done[w], self.stood_at_sign[w] = False, False
        self.zone[w], self.lane_off[w] = zone, lane_off
        self.has_timeout[w], self.zone_entered[w], self.zone_over[w] = scenario_timeout, np.nan, False
        self.scenario_timed_out[w] = False
        self.ev_slot[w], self.ev_checked[w], self.ev_failing[w] = ev_slot, False, False
        self.ev_near_time[w], self.ev_front_s[w] = np.nan, np.nan
        self.route_timeout[w] = ROUTE_TIMEOUT_BASE
        self.off_route_m[w], self.in_safe_route[w] = 0.0, True
        self.hit_slot[w], self.hit_time[w], self.hit_xy[w] = -1, -np.inf, np.nan
        self.next_checkpoint[w] = 1
        self.speed_sum[w] = self.speed_n[w] = self.bg_sum[w] = self.bg_n[w] = 0.0
        self.done[w], self.failure[w] = False, None
        self.infractions[w] = {k: [] for k in INFRACTION_KEYS}

    @property
    def outside_percentage(self) -> np.ndarray:
        """OutsideRouteLanesTest's value: metres outside / metres of route completed x 100."""
        return np.where(self.progress > 0, 100.0 * self.outside_m / np.maximum(self.progress, 1e-6), 0.0)

    def _add(self, w: int, key: str, message: str, events: list) -> None:
        self.infractions[w][key].append(message)
        events[w].append((key, message))

    def update(self, time, live, ego, progress, lateral, lane_lo, lane_hi, in_junction, dist_to_route,
               dist_to_end, hits, actor_ids, actor_type_ids, light_red, bg_speed, speed_limit=None, ev=None) -> list:
        """Advance every criterion of the ``live`` worlds one tick; returns per-world event lists.

        ``ego``: dict of (W,) arrays x, y, speed, half_length (``speed`` is the speed at contact:
        a contact that stops the car is judged at the speed it hit with). ``hits`` (W, M) contacts;
        ``light_red`` (W,) whether the ego's light is red; ``bg_speed`` (W, 2) sum and count of
        background-vehicle speeds this tick; ``speed_limit`` (W,) m/s at the ego (default 50 km/h);
        ``ev``: dict of (W,) arrays ``ego_ahead`` (the ego is ahead of the emergency vehicle along
        its heading), ``dist`` (ego to vehicle, m), ``s`` (the vehicle's arc length on its path) and
        ``active``, for worlds with an emergency vehicle.
        """
        W = len(live)
        events: list[list] = [[] for _ in range(W)]
        speed, x, y = ego["speed"], ego["x"], ego["y"]
        prev = self.progress.copy()
        self.progress = np.where(live, np.maximum(self.progress, progress), self.progress)
        advanced = self.progress - prev

        self._collisions(time, live, x, y, ego.get("contact_speed", speed), hits, actor_ids, actor_type_ids, events)

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

        # Outside route lanes: beyond the centre line is the wrong-direction lane (a scenario may allow
        # it), past the kerb-side edge is off the driving lanes (never allowed). Junctions are exempt.
        wrong_allowed = (self.progress >= self.lane_off[:, 0]) & (self.progress <= self.lane_off[:, 1])
        outside = live & ~in_junction & (((lateral < lane_lo) & ~wrong_allowed) | (lateral > lane_hi))
        self.outside_m += np.where(outside, advanced, 0.0)
        for w in np.nonzero(outside & (advanced > 0))[0]:
            metres, pct = self.outside_m[w], self.outside_percentage[w]
            self.infractions[w]["outside_route_lanes"] = [
                f"Agent went outside its route lanes for about {round(metres, 3)} meters ({round(pct, 2)}% of the completed route)"]

        # Scenario: triggered on entering the zone, over on leaving it; the timeout where the type has one.
        entered = live & np.isnan(self.zone_entered) & (self.progress >= self.zone[:, 0])
        self.zone_entered = np.where(entered, time, self.zone_entered)
        running = live & ~np.isnan(self.zone_entered) & ~self.zone_over
        timed_out_scenario = running & self.has_timeout & (time - self.zone_entered > SCENARIO_TIMEOUT)
        for w in np.nonzero(timed_out_scenario)[0]:
            self.scenario_timed_out[w] = True
            self._add(w, "scenario_timeouts", "Agent timed out a scenario", events)
        ending = running & ((self.progress >= self.zone[:, 1]) | timed_out_scenario)
        self.zone_over |= ending
        # ActorBlockedTest is off while a ScenarioTimeout behaviour runs; its clock restarts on each switch.
        blocked_on = ~(self.has_timeout & ~np.isnan(self.zone_entered) & ~self.zone_over)
        switched = live & self.has_timeout & (entered | ending)
        moving = speed >= MIN_SPEED
        self.last_moving = np.where(live & (moving | switched), time, self.last_moving)

        if ev is not None:
            self._emergency_vehicle(time, live, running, ending, ev, events)

        # Completion, and the terminating criteria.
        # Below 100 until the end is really reached (a car driving off past the route's last point is not done).
        self.completion = np.where(live, np.minimum(100.0 * self.progress / np.maximum(self.route_len, 1e-6), 99.99),
                                   self.completion)
        reached = live & (self.completion > 99.0) & (dist_to_end < ROUTE_END_DISTANCE)
        self.completion = np.where(reached, 100.0, self.completion)
        going = live & ~reached
        blocked = going & blocked_on & ~moving & (time - self.last_moving > self.blocked_seconds)
        # InRouteTest: too far now, or too much of the route driven far from it.
        near = dist_to_route < OFF_ROUTE_MAX
        self.in_safe_route = np.where(live & near, dist_to_route < OFF_ROUTE_MIN, self.in_safe_route)
        self.off_route_m += np.where(live & ~self.in_safe_route, advanced, 0.0)
        deviated = going & (~near | (100.0 * self.off_route_m / np.maximum(self.route_len, 1e-6) > OFF_ROUTE_PERCENTAGE))
        # RouteTimeoutBehavior: each metre completed buys 1 / (10 % of the speed limit) seconds.
        limit = np.full(W, 50.0 / 3.6) if speed_limit is None else np.maximum(speed_limit, 1e-3)
        self.route_timeout += np.where(live, advanced / (ROUTE_TIMEOUT_SPEED_FRACTION * limit), 0.0)
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
            if self.ev_slot[w] >= 0 and not self.ev_checked[w] and not np.isnan(self.zone_entered[w]):
                self._judge_emergency_vehicle(w, events)
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
        return events

    def _collisions(self, time, live, x, y, speed, hits, actor_ids, actor_type_ids, events) -> None:
        """CollisionTest: at most one counted contact per tick (the first one fixes the location)."""
        slots = np.arange(hits.shape[1])
        candidates = hits & live[:, None] & (slots[None, :] != self.hit_slot[:, None])
        near_last = np.hypot(x - self.hit_xy[:, 0], y - self.hit_xy[:, 1]) <= COLLISION_DEDUPE_METRES   # False while NaN
        fresh = candidates.any(1) & ~near_last & (speed >= MIN_SPEED)
        for w in np.nonzero(fresh)[0]:
            m = int(np.argmax(candidates[w]))
            self.hit_slot[w], self.hit_time[w], self.hit_xy[w] = m, time[w], (x[w], y[w])
            key = collision_key(actor_type_ids[w][m])
            if key is not None:
                self._add(w, key, f"Agent collided against object with type={actor_type_ids[w][m]} and "
                                  f"id={actor_ids[w][m]} at {_at(x[w], y[w])}", events)
        # Forget the last collision's place once 5 m away, its actor 5 s after it.
        away = live & (np.hypot(x - self.hit_xy[:, 0], y - self.hit_xy[:, 1]) > COLLISION_DEDUPE_METRES)
        self.hit_xy[away] = np.nan
        self.hit_slot[live & (time - self.hit_time > COLLISION_DEDUPE_SECONDS)] = -1

    def _emergency_vehicle(self, time, live, running, ending, ev, events) -> None:
        has = live & (self.ev_slot >= 0) & ~self.ev_checked
        watched = has & (running | ending) & ev["active"]
        self.ev_failing = np.where(watched, ev["ego_ahead"], self.ev_failing)
        near = watched & np.isnan(self.ev_near_time) & (ev["dist"] < EV_NEAR)
        self.ev_near_time = np.where(near, time, self.ev_near_time)
        in_front = watched & np.isnan(self.ev_front_s) & ~ev["ego_ahead"]
        self.ev_front_s = np.where(in_front, ev["s"], self.ev_front_s)
        over = has & ~np.isnan(self.zone_entered) & (
            ending | (time - self.ev_near_time >= EV_IDLE) | (ev["s"] - self.ev_front_s >= EV_END_DISTANCE))
        for w in np.nonzero(over)[0]:
            self._judge_emergency_vehicle(w, events)

    def _judge_emergency_vehicle(self, w: int, events: list) -> None:
        self.ev_checked[w] = True
        if self.ev_failing[w]:
            self._add(w, "yield_emergency_vehicle_infractions", "Agent failed to yield to an emergency vehicle", events)

    def _min_speed_message(self, w: int, events: list) -> None:
        ego_mean = self.speed_sum[w] / max(self.speed_n[w], 1)
        if self.bg_n[w] > 0:
            value = round(100.0 * ego_mean / max(self.bg_sum[w] / self.bg_n[w], 1e-6), 2)
        else:
            value = 100
        self._add(w, "min_speed_infractions", f"Average speed is {value}% of the surrounding traffic's one", events)
        self.speed_sum[w] = self.speed_n[w] = self.bg_sum[w] = self.bg_n[w] = 0.0
