"""``VecDriveEnv``: N embedded worlds stepped in one call, every stage a numpy operation over worlds.

This is the simulator's core; :class:`minddrive.sim.env.EmbeddedDriveEnv` is the one-world
case of it, so a batch and N single envs run the same code. All per-world data (routes, NPC
paths, lights) live in padded arrays with fixed capacities, so resetting one world rewrites
its row and never reallocates. There is no auto-reset: a finished world stays frozen (its
record final) until ``reset_world``. Observation and info keys: :mod:`minddrive.sim.base`.
"""

from __future__ import annotations

import time as _time
import numpy as np

from minddrive.constants import (COMMAND_LOOKAHEAD, EGO_STATE_DIM, KEY_POINT_SPACING, NUM_ROUTE_POINTS, ROAD_OPTION, ROUTE_NODES,
                                 ROUTE_POINT_SPACING, TARGET_MIN_DISTANCE, path_index_from_road_option)
from minddrive.errors import UserError
from minddrive.sim import actors as A
from minddrive.sim.criteria import BLOCKED_SECONDS, RouteCriteria
from minddrive.sim.metric_info import metric_info_from_trace
from minddrive.sim.records import route_record, score_penalty
from minddrive.sim.roads import right_normal, wrap_angle
from minddrive.sim.scenarios import (ALL_RED, CONTROL_NOISE_RADIUS, GREEN, LIGHT_PERIOD, SCENARIO_TIMEOUT_TYPES, SCENARIO_TYPES, YELLOW,
                                      ScenarioWorld, build_scenario)

MAX_ACTORS = 16
_NO_ACTORS = [""] * MAX_ACTORS  # actor kinds / type ids of a world that has no route loaded yet
MAX_PATH_POINTS = 420
MAX_ROUTE_POINTS = 420
MAX_LIGHTS = 4
MAX_KEY_POINTS = 16
PROJECTION_WINDOW = np.arange(-4, 24)      # route points searched around the last projection
ACTOR_ID_BASE = 100


def light_states(time: np.ndarray, offset: np.ndarray, group: np.ndarray) -> np.ndarray:
    """CARLA TrafficLightState (0 red, 1 yellow, 2 green) of (W, L) lights at game time (W,)."""
    phase = ((time + offset)[:, None] - group * (GREEN + YELLOW + ALL_RED)) % LIGHT_PERIOD
    return np.where(phase < GREEN, 2, np.where(phase < GREEN + YELLOW, 1, 0))


class VecDriveEnv:
    """N embedded worlds; ``step(controls (N, 3))`` advances all of them by ``dt``."""

    dt = 0.1

    def __init__(self, num_worlds: int, render: bool = False, image_size: tuple[int, int] = (256, 448),
                 blocked_seconds: float = BLOCKED_SECONDS, scenario: str | None = None):
        if num_worlds < 1:
            raise UserError(f"num_worlds: expected >= 1, got {num_worlds}")
        W = self.num_worlds = int(num_worlds)
        self.render, self.image_size, self.default_scenario = bool(render), tuple(image_size), scenario
        self.actors = A.ActorArrays.empty(W, MAX_ACTORS, MAX_PATH_POINTS)
        self.criteria = RouteCriteria(W, MAX_ACTORS, blocked_seconds=blocked_seconds)
        z = lambda *shape: np.zeros((W,) + shape)
        self.x, self.y, self.yaw, self.speed, self.steer_angle = z(), z(), z(), z(), z()
        self.accel, self.yaw_rate, self.control, self.time = z(2), z(), z(3), z()
        self.route_pts, self.route_yaw = z(MAX_ROUTE_POINTS, 2), z(MAX_ROUTE_POINTS)
        self.route_option = np.full((W, MAX_ROUTE_POINTS), ROAD_OPTION["LANEFOLLOW"])
        self.route_junction = np.zeros((W, MAX_ROUTE_POINTS), bool)
        self.route_lo, self.route_hi, self.route_limit = z(MAX_ROUTE_POINTS), z(MAX_ROUTE_POINTS), z(MAX_ROUTE_POINTS)
        self.route_n = np.full(W, 2)
        self.key_points = np.full((W, MAX_KEY_POINTS), np.inf)
        self.progress = z()                                     # metres along the route (projection)
        self.light_group, self.light_offset = np.zeros((W, MAX_LIGHTS)), z()
        self.light_valid = np.zeros((W, MAX_LIGHTS), bool)
        self.ego_light = np.full(W, -1)
        # TrafficLightFreezer (SignalizedJunctionLeftTurn): start distance, game time it began, delay, states.
        self.freeze_at, self.freeze_t0, self.freeze_delay = np.full(W, np.inf), np.full(W, np.inf), z()
        self.freeze_initial, self.freeze_final = np.zeros((W, MAX_LIGHTS), int), np.zeros((W, MAX_LIGHTS), int)
        # ControlLoss noise spots: route distance and (throttle mean, std, steer mean, std) of each.
        self.noise_s, self.noise_param = np.full((W, 3), np.inf), np.zeros((W, 3, 4))
        self._noise_rng: list[np.random.Generator | None] = [None] * W
        self._penalty = np.ones(W)
        self.walker = np.zeros((W, MAX_ACTORS), bool)           # actors a car does not stop against
        self.worlds: list[ScenarioWorld | None] = [None] * W
        self.meta: list[dict] = [{} for _ in range(W)]
        # Per world, one (x, y, yaw, ax, ay, yaw_rate) row per tick driven: the route's metric_info.json.
        self.kinematics: list[list[tuple]] = [[] for _ in range(W)]
        self._calibration = None

    # ------------------------------------------------------------------------------------- reset
    def reset(self, seeds, options_list=None) -> tuple[dict, list[dict]]:
        seeds = list(seeds)
        if len(seeds) != self.num_worlds:
            raise UserError(f"seeds: expected {self.num_worlds} seeds, got {len(seeds)}")
        options_list = list(options_list) if options_list is not None else [None] * self.num_worlds
        for i, (seed, options) in enumerate(zip(seeds, options_list)):
            self._load(i, seed, options)
        return self._observe(), [self._info(i, []) for i in range(self.num_worlds)]

    def reset_world(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Rebuild world ``i``; returns its own (unbatched) observation and info."""
        self._load(i, seed, options)
        obs = self._observe()
        return {k: v[i] for k, v in obs.items()}, self._info(i, [])

    def _load(self, i: int, seed: int | None, options: dict | None) -> None:
        options = dict(options or {})
        seed = int(seed if seed is not None else np.random.SeedSequence().entropy % (1 << 31))
        scenario_type = options.get("scenario")
        if "route" in options and options["route"] is not None:  # a RouteSpec from minddrive.sim.routes
            spec = options["route"]
            scenario_type = getattr(spec, "scenario_type", None)
            options.setdefault("route_id", spec.route_id())
            options.setdefault("scenario_name", spec.scenario_name)
            options.setdefault("index", getattr(spec, "index", 0))
        if scenario_type is None:
            scenario_type = self.default_scenario or SCENARIO_TYPES[seed % len(SCENARIO_TYPES)]
        world = build_scenario(scenario_type, seed, options.get("params"))
        route = world.route
        n = len(route.points)
        if n > MAX_ROUTE_POINTS or len(world.lights) > MAX_LIGHTS:
            raise UserError(f"scenario {scenario_type}: route of {n} m or {len(world.lights)} lights exceed the world capacity")
        self.worlds[i] = world
        self.meta[i] = dict(seed=seed, scenario_type=scenario_type,
                            route_id=options.get("route_id", f"RouteScenario_{seed}_rep0"),
                            scenario_name=options.get("scenario_name", f"{scenario_type}_1"),
                            index=int(options.get("index", 0)), wall_start=_time.monotonic(),
                            type_ids=[a.type_id for a in world.actors], kinds=[a.kind for a in world.actors])
        pad = lambda arr, fill: np.concatenate([arr, np.repeat(arr[-1:] if fill is None else np.array([fill]), MAX_ROUTE_POINTS - n, 0)])
        self.route_pts[i] = pad(route.points, None)
        self.route_yaw[i] = pad(route.yaw, None)
        self.route_option[i] = pad(route.road_option, None)
        self.route_junction[i] = pad(route.in_junction, None)
        self.route_lo[i], self.route_hi[i] = pad(route.lane_lo, None), pad(route.lane_hi, None)
        self.route_limit[i] = pad(route.speed_limit, None)
        self.route_n[i] = n
        changes = np.nonzero(np.diff(route.road_option) != 0)[0] + 1
        keys = np.unique(np.concatenate([np.arange(KEY_POINT_SPACING, n - 1, KEY_POINT_SPACING), changes, [n - 1]]))
        self.key_points[i] = np.inf
        self.key_points[i, :min(len(keys), MAX_KEY_POINTS)] = keys[:MAX_KEY_POINTS]
        self.key_points[i, min(len(keys), MAX_KEY_POINTS) - 1] = n - 1
        # Ego at the route start.
        self.x[i], self.y[i] = route.points[0]
        self.yaw[i], self.speed[i], self.steer_angle[i] = route.yaw[0], world.ego_speed, 0.0
        self.accel[i], self.yaw_rate[i], self.control[i], self.time[i], self.progress[i] = 0.0, 0.0, 0.0, 0.0, 0.0
        self.kinematics[i] = []
        # Lights.
        self.light_valid[i] = False
        self.ego_light[i] = -1
        for k, light in enumerate(world.lights):
            self.light_valid[i, k], self.light_group[i, k] = True, light.group
            if np.isfinite(light.route_stop_s):
                self.ego_light[i] = k
        self.light_offset[i] = world.light_offset
        self.freeze_at[i], self.freeze_t0[i] = np.inf, np.inf
        if world.light_freeze is not None:
            at, delay, initial, final = world.light_freeze
            L = len(world.lights)
            self.freeze_at[i], self.freeze_delay[i] = at, delay
            self.freeze_initial[i, :L], self.freeze_final[i, :L] = initial, final
        self.noise_s[i], self.noise_param[i] = np.inf, 0.0
        for k, (at, *param) in enumerate(world.control_noise[:3]):
            self.noise_s[i, k], self.noise_param[i, k] = at, param
        self._noise_rng[i] = np.random.default_rng([seed & 0xFFFFFFFF, 7]) if world.control_noise else None
        self._penalty[i] = 1.0
        self.actors.load(i, world.actors)
        self.walker[i] = False
        self.walker[i, :len(world.actors)] = [a.kind == "walker" for a in world.actors]
        ev = [k for k, a in enumerate(world.actors) if a.role == "emergency"]
        light_stop = world.lights[self.ego_light[i]].route_stop_s if self.ego_light[i] >= 0 else np.inf
        stop_s = world.stop_signs[0].route_stop_s if world.stop_signs else np.inf
        self.criteria.reset_world(i, route_len=float(n - 1), light_stop_s=light_stop, stop_sign_s=stop_s,
                                  zone=world.zone, lane_off=world.lane_test_off, ev_slot=ev[0] if ev else -1,
                                  light_id=1000 + int(self.ego_light[i]),
                                  scenario_timeout=scenario_type in SCENARIO_TIMEOUT_TYPES)

    # -------------------------------------------------------------------------------------- step
    def step(self, controls) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        controls = self._validate(controls)
        live = ~self.criteria.done
        dt = self.dt
        noisy = (np.abs(self.progress[:, None] - self.noise_s) < CONTROL_NOISE_RADIUS) & live[:, None]
        if noisy.any():
            controls = self._add_control_noise(controls, noisy)
        before = self.criteria.completion.copy()

        # 1. Ego dynamics (finished worlds stay where they are).
        x, y, yaw, speed, steer, accel, yaw_rate = A.ego_dynamics(self.x, self.y, self.yaw, self.speed,
                                                                  self.steer_angle, controls, dt)
        # Rigid contact: a move into a car, bicycle or obstacle ahead does not happen; the ego stops
        # where it was (it never passes through). The contact is judged at the speed it hit with.
        stopped_by = self._contacts(np.stack([x, y, yaw], -1)) & ~self.walker & live[:, None]
        ahead = (self.actors.x - self.x[:, None]) * np.cos(self.yaw)[:, None] + \
            (self.actors.y - self.y[:, None]) * np.sin(self.yaw)[:, None] > 0
        stopped_by &= ahead
        blocked = stopped_by.any(1)
        contact_speed = speed.copy()
        x, y, yaw = np.where(blocked, self.x, x), np.where(blocked, self.y, y), np.where(blocked, self.yaw, yaw)
        accel = np.where(blocked, -self.speed / dt, accel)
        speed, yaw_rate = np.where(blocked, 0.0, speed), np.where(blocked, 0.0, yaw_rate)
        keep = lambda new, old: np.where(live, new, old)
        accel_world = np.stack([np.cos(yaw), np.sin(yaw)], -1) * accel[:, None] + \
            np.stack([-np.sin(yaw), np.cos(yaw)], -1) * (speed * yaw_rate)[:, None]
        self.accel = np.where(live[:, None], accel_world, 0.0)
        self.x, self.y, self.yaw, self.speed = keep(x, self.x), keep(y, self.y), keep(wrap_angle(yaw), self.yaw), keep(speed, self.speed)
        self.steer_angle, self.yaw_rate = keep(steer, self.steer_angle), keep(yaw_rate, 0.0)
        self.control = np.where(live[:, None], controls, self.control)
        self.time = self.time + dt * live
        for i in np.nonzero(live)[0]:
            self.kinematics[i].append((self.x[i], self.y[i], self.yaw[i], self.accel[i, 0], self.accel[i, 1], self.yaw_rate[i]))

        # 2. Lights, then NPCs (IDM, scripted walkers, hard brakers).
        self._project_on_route()
        self.freeze_t0 = np.where(np.isinf(self.freeze_t0) & (self.progress >= self.freeze_at), self.time, self.freeze_t0)
        lights = self._light_states(slice(None))
        light_red = (lights != 2) & self.light_valid
        A.step_actors(self.actors, self.ego_box(), self.speed, self.progress, light_red, self.time, dt)

        # 3. Criteria on the new state. An actor in contact with the ego stops where it is (crashed).
        hits = (self._contacts(np.stack([self.x, self.y, self.yaw], -1)) | stopped_by) & live[:, None]
        if hits.any():
            self.actors.crash(hits)
        ego_red = np.where(self.ego_light >= 0, np.take_along_axis(lights, np.clip(self.ego_light, 0, None)[:, None], 1)[:, 0] == 0, False)
        W = self.num_worlds
        idx = np.clip(np.round(self.progress).astype(int), 0, self.route_n - 1)
        rows = np.arange(W)
        lateral = self._lateral(idx)
        bg = self.actors.background & self.actors.active & self.actors.started
        events = self.criteria.update(
            time=self.time, live=live,
            ego=dict(x=self.x, y=self.y, speed=self.speed, half_length=np.full(W, A.EGO_EXTENT[0]),
                     contact_speed=np.where(blocked, contact_speed, self.speed)),
            progress=self.progress, lateral=lateral, lane_lo=self.route_lo[rows, idx], lane_hi=self.route_hi[rows, idx],
            in_junction=self.route_junction[rows, idx], dist_to_route=np.abs(lateral),
            dist_to_end=np.hypot(*(self.route_pts[rows, self.route_n - 1] - np.stack([self.x, self.y], -1)).T),
            hits=hits, actor_ids=[[ACTOR_ID_BASE + k for k in range(MAX_ACTORS)]] * W,
            actor_type_ids=[m.get("type_ids", _NO_ACTORS) for m in self.meta],
            light_red=ego_red, bg_speed=np.stack([(self.actors.speed * bg).sum(1), bg.sum(1)], -1),
            speed_limit=self.route_limit[rows, idx], ev=self._emergency_vehicle_state())

        # 4. Observation.
        rewards = self.criteria.completion - before
        terminated = self.criteria.done & live
        outside = self.criteria.outside_m > 0
        for i in range(W):
            if events[i] or outside[i]:   # the penalty only changes when something fired
                self._penalty[i] = score_penalty(self.criteria.infractions[i], float(self.criteria.outside_percentage[i]))
        infos = [self._info(i, events[i]) for i in range(W)]
        return self._observe(), rewards, terminated, np.zeros(W, bool), infos

    def _add_control_noise(self, controls: np.ndarray, noisy: np.ndarray) -> np.ndarray:
        """ControlLoss's AddNoiseToRouteEgo: Gaussian throttle and steer noise near each noise spot."""
        controls = controls.copy()
        for i in np.nonzero(noisy.any(1))[0]:
            mu_t, sd_t, mu_s, sd_s = self.noise_param[i, int(np.argmax(noisy[i]))]
            draw = self._noise_rng[i].standard_normal(2)
            controls[i, 1] = np.clip(controls[i, 1] + mu_t + sd_t * draw[0], 0.0, 1.0)
            controls[i, 0] = np.clip(controls[i, 0] + mu_s + sd_s * draw[1], -1.0, 1.0)
        return controls

    def _light_states(self, rows) -> np.ndarray:
        """CARLA states of worlds ``rows``' lights: the cycle, or a TrafficLightFreezer's held states."""
        states = light_states(self.time[rows], self.light_offset[rows], self.light_group[rows])
        elapsed = (self.time[rows] - self.freeze_t0[rows])[:, None]
        held = np.where(elapsed < self.freeze_delay[rows][:, None], self.freeze_initial[rows], self.freeze_final[rows])
        return np.where(np.isfinite(elapsed), held, states)

    def _validate(self, controls) -> np.ndarray:
        arr = np.asarray(controls, dtype=np.float64)
        if arr.shape != (self.num_worlds, 3):
            raise UserError(f"controls: expected shape ({self.num_worlds}, 3) [steer, throttle, brake], got {arr.shape}")
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise UserError(f"controls[{int(np.argmax(bad))}]: expected finite values, got {arr[bad][0].tolist()}")
        return np.stack([np.clip(arr[:, 0], -1, 1), np.clip(arr[:, 1], 0, 1), np.clip(arr[:, 2], 0, 1)], axis=1)

    # ------------------------------------------------------------------------------ geometry helpers
    def ego_box(self) -> np.ndarray:
        W = self.num_worlds
        return np.stack([self.x, self.y, self.yaw, np.full(W, A.EGO_EXTENT[0]), np.full(W, A.EGO_EXTENT[1])], -1)

    def _contacts(self, pose: np.ndarray) -> np.ndarray:
        """(W, M) overlaps of the ego box at ``pose`` (W, 3: x, y, yaw) with every active actor."""
        W = self.num_worlds
        reach = A.EGO_EXTENT[0] + np.hypot(self.actors.half_length, self.actors.half_width) + 0.5
        near = self.actors.active & (np.hypot(self.actors.x - pose[:, :1], self.actors.y - pose[:, 1:2]) < reach)
        if not near.any():   # broad phase: the exact box test only when some actor is within reach
            return near
        box = np.concatenate([pose, np.full((W, 1), A.EGO_EXTENT[0]), np.full((W, 1), A.EGO_EXTENT[1])], -1)
        return A.boxes_overlap(box[:, None, :], self.actors.boxes()) & near

    def _emergency_vehicle_state(self) -> dict:
        """What YieldToEmergencyVehicleTest reads: is the ego ahead of the vehicle along its heading."""
        rows, k = np.arange(self.num_worlds), np.clip(self.criteria.ev_slot, 0, None)
        act = self.actors
        ex, ey, eyaw = act.x[rows, k], act.y[rows, k], act.yaw[rows, k]
        dx, dy = self.x - ex, self.y - ey
        return dict(ego_ahead=dx * np.cos(eyaw) + dy * np.sin(eyaw) > 0, dist=np.hypot(dx, dy), s=act.s[rows, k],
                    active=act.active[rows, k] & (self.criteria.ev_slot >= 0))

    def _project_on_route(self) -> None:
        """Progress = arc length of the ego's projection, searched in a window around the last one."""
        base = np.floor(self.progress).astype(int)
        cand = np.clip(base[:, None] + PROJECTION_WINDOW, 0, self.route_n[:, None] - 2)
        rows = np.arange(self.num_worlds)[:, None]
        p0, p1 = self.route_pts[rows, cand], self.route_pts[rows, cand + 1]
        seg = p1 - p0
        ego = np.stack([self.x, self.y], -1)[:, None, :]
        t = np.clip(((ego - p0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-9), 0.0, 1.0)
        dist = np.linalg.norm(p0 + t[..., None] * seg - ego, axis=-1)
        best = np.argmin(dist, axis=1)
        progress = cand[rows[:, 0], best] + t[rows[:, 0], best]
        self.progress = np.where(~self.criteria.done, progress, self.progress)

    def _lateral(self, idx: np.ndarray) -> np.ndarray:
        rows = np.arange(self.num_worlds)
        d = np.stack([self.x, self.y], -1) - self.route_pts[rows, idx]
        return (d * right_normal(self.route_yaw[rows, idx])).sum(-1)

    def _ahead_of_ego(self) -> np.ndarray:
        """(W, M) signed distance of each actor along the ego heading."""
        dx, dy = self.actors.x - self.x[:, None], self.actors.y - self.y[:, None]
        return dx * np.cos(self.yaw)[:, None] + dy * np.sin(self.yaw)[:, None]

    def to_ego(self, points: np.ndarray) -> np.ndarray:
        """World points (W, K, 2) -> ego frame (x forward, y right)."""
        d = points - np.stack([self.x, self.y], -1)[:, None, :]
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        return np.stack([d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c], -1)

    # ------------------------------------------------------------------------------- observations
    def _navigation_route(self, first: np.ndarray, ahead: np.ndarray, last: np.ndarray) -> np.ndarray:
        """(W, NUM_ROUTE_POINTS, 2) ego-frame route: the polyline from the ego through the upcoming target
        points, resampled every ROUTE_POINT_SPACING m and extended along its last segment.

        Built exactly as the data pipeline builds ``route`` from a clip's annotations (the ego position,
        then the distinct navigation targets ahead: ``minddrive.data.infos``), so a model sees the same
        feature in closed loop as in training. (A dense lane-centre route here, as before, showed the model
        lateral offsets it never saw in training, and its plans drifted out of lane.)"""
        W, rows = self.num_worlds, np.arange(self.num_worlds)
        cols = np.minimum(first[:, None] + np.arange(ROUTE_NODES), MAX_KEY_POINTS - 1)
        valid = np.take_along_axis(ahead, cols, 1)
        valid[:, 0] = True                                   # no target ahead: head for the route's end
        keys = np.where(valid, self.key_points[rows[:, None], cols], np.inf)
        keys = np.minimum(np.where(np.isfinite(keys), keys, last[:, None]), last[:, None]).astype(int)
        keys[~ahead.any(1), 0] = last[~ahead.any(1)]
        nodes = self.to_ego(self.route_pts[rows[:, None], keys])                     # (W, K, 2)
        poly = np.concatenate([np.zeros((W, 1, 2)), nodes], 1)                       # ego at the origin
        seg = np.linalg.norm(np.diff(poly, axis=1), axis=-1)                         # (W, K)
        seg = np.where(valid, seg, 0.0)
        arc = np.concatenate([np.zeros((W, 1)), np.cumsum(seg, 1)], 1)               # (W, K + 1)
        usable = valid & (seg > 1e-6)
        last_seg = np.where(usable.any(1), ROUTE_NODES - 1 - np.argmax(usable[:, ::-1], axis=1), 0)
        t = ROUTE_POINT_SPACING * np.arange(1, NUM_ROUTE_POINTS + 1)
        j = (arc[:, None, 1:] <= t[None, :, None]).sum(-1)                           # segment holding t
        j = np.minimum(j, last_seg[:, None])
        while True:  # step back over zero-length segments (repeated nodes) to one with a direction
            zero = ~np.take_along_axis(usable, j, 1) & (j > 0)
            if not zero.any():
                break
            j = np.where(zero, j - 1, j)
        start = np.take_along_axis(poly, j[..., None].repeat(2, -1), 1)
        end = np.take_along_axis(poly, (j + 1)[..., None].repeat(2, -1), 1)
        length = np.maximum(np.take_along_axis(seg, j, 1), 1e-6)
        frac = (t[None, :] - np.take_along_axis(arc, j, 1)) / length
        route = start + frac[..., None] * (end - start)
        # Degenerate (ego at the route's end, nothing ahead): the points straight ahead.
        flat = ~usable.any(1)
        route[flat] = np.stack([t, np.zeros_like(t)], -1)
        return route

    def _observe(self) -> dict:
        W, rows = self.num_worlds, np.arange(self.num_worlds)
        last = self.route_n - 1
        ahead = np.isfinite(self.key_points) & (self.key_points > self.progress[:, None] + TARGET_MIN_DISTANCE)
        first = np.argmax(ahead, axis=1)
        key = self.key_points[rows, first]
        key = np.where(ahead.any(1), key, last).astype(int)
        target = self.to_ego(self.route_pts[rows, np.minimum(key, last)][:, None, :])[:, 0]
        route = self._navigation_route(first, ahead, last)
        window = np.minimum(np.floor(self.progress)[:, None].astype(int) + np.arange(COMMAND_LOOKAHEAD), last[:, None])
        options = self.route_option[rows[:, None], window]
        turning = options != ROAD_OPTION["LANEFOLLOW"]
        road_option = np.where(turning.any(1), options[rows, np.argmax(turning, axis=1)], ROAD_OPTION["LANEFOLLOW"])
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        acc_x = self.accel[:, 0] * c + self.accel[:, 1] * s
        acc_y = -self.accel[:, 0] * s + self.accel[:, 1] * c
        limit = self.route_limit[rows, np.minimum(np.round(self.progress).astype(int), last)]
        ego_state = np.stack([self.speed, acc_x, acc_y, self.yaw_rate, self.control[:, 0], self.control[:, 1],
                              self.control[:, 2], limit], -1).astype(np.float32)
        assert ego_state.shape[1] == EGO_STATE_DIM
        obs = dict(ego_state=ego_state,
                   command=np.array([path_index_from_road_option(o) for o in road_option], dtype=np.int64),
                   road_option=road_option.astype(np.int64), target_point=target.astype(np.float32),
                   route=route.astype(np.float32), timestamp=self.time.copy())
        if self.render:
            obs.update(self._render_all())
        return obs

    def _render_all(self) -> dict:
        return self.render_cameras(range(self.num_worlds))

    def render_cameras(self, indices) -> dict:
        """The six camera images (and calibration) of worlds ``indices``, batched in that order.

        Rendering dominates a camera rollout's cost, so a caller that decides only every few ticks
        builds the env with ``render=False`` and asks for images only when it needs them. A world
        never loaded (no scenario yet) gets black images instead of failing the whole batch.
        """
        from minddrive.constants import CAMERA_NAMES
        from minddrive.sim.bev import reserve_map_cache
        from minddrive.sim.sensors import camera_calibration, render_cameras

        reserve_map_cache(self.num_worlds + 1)  # one map per world (+1 for a world being reset)
        indices = list(indices)
        height, width = self.image_size
        if self._calibration is None:
            self._calibration = camera_calibration(width, height)
        # Rendered in place into one batch buffer: stacking per-world results cost ~1,000 page faults
        # (~4 ms) per 6x256x448 world-step, as much as the rendering itself.
        images = np.empty((len(indices), len(CAMERA_NAMES), height, width, 3), np.uint8)
        for j, i in enumerate(indices):
            if self.worlds[i] is None:
                images[j] = 0
            else:
                render_cameras(self.snapshot(i), width, height, out=images[j])
        tile = lambda a: np.broadcast_to(a.astype(np.float32), (len(indices),) + a.shape).copy()
        return dict(images=images, cam_intrinsic=tile(self._calibration["cam_intrinsic"]),
                    cam2ego=tile(self._calibration["cam2ego"]), lidar2img=tile(self._calibration["lidar2img"]))

    def _info(self, i: int, events: list) -> dict:
        c = self.criteria
        status = self.route_record(i)["status"] if c.done[i] else "Started"
        return dict(events=list(events), route_completion=float(c.completion[i]),
                    score_penalty=float(self._penalty[i]), status=status,
                    scenario_type=self.meta[i].get("scenario_type", ""), done_reason=c.failure[i] if c.done[i] else None)

    # ------------------------------------------------------------------------------------ records
    def route_record(self, i: int) -> dict:
        c, meta, world = self.criteria, self.meta[i], self.worlds[i]
        return route_record(index=meta.get("index", 0), route_id=meta.get("route_id", "RouteScenario_0_rep0"),
                            scenario_name=meta.get("scenario_name", ""), weather_id=world.weather_id if world else None,
                            town=world.town if world else "", infractions=c.infractions[i],
                            route_completion=float(c.completion[i]), outside_lanes_percentage=float(c.outside_percentage[i]),
                            failure=c.failure[i], route_length=float(c.route_len[i]), duration_game=float(self.time[i]),
                            duration_system=_time.monotonic() - meta.get("wall_start", _time.monotonic()))

    def metric_info(self, i: int) -> dict[int, dict]:
        """World ``i``'s ticks as Bench2Drive's ``metric_info.json`` entries (see :mod:`minddrive.sim.metric_info`)."""
        return metric_info_from_trace(self.kinematics[i])

    def route_records(self) -> list[dict]:
        return [self.route_record(i) for i in range(self.num_worlds)]

    # ----------------------------------------------------------------------------------- snapshot
    def snapshot(self, i: int):
        """A :class:`minddrive.sim.scene.Scene` of world ``i`` for renderers and writers."""
        from minddrive.sim.scene import ActorState, Scene, StopSign, TrafficLight

        world, meta, act = self.worlds[i], self.meta[i], self.actors
        ego = ActorState(id=0, kind="ego", type_id=A.EGO_TYPE_ID, x=float(self.x[i]), y=float(self.y[i]),
                         yaw=float(self.yaw[i]), speed=float(self.speed[i]), extent=A.EGO_EXTENT,
                         brake=float(self.control[i, 2]))
        others = []
        for k, spec in enumerate(world.actors):
            if act.present[i, k]:
                others.append(ActorState(id=ACTOR_ID_BASE + k, kind=spec.kind, type_id=spec.type_id,
                                         x=float(act.x[i, k]), y=float(act.y[i, k]), yaw=float(act.yaw[i, k]),
                                         speed=float(act.speed[i, k]), extent=tuple(spec.extent)))
        states = self._light_states(slice(i, i + 1))[0]
        lights = [TrafficLight(id=1000 + k, x=l.x, y=l.y, state=int(states[k]), stop_line=l.stop_line,
                               affects_ego=k == self.ego_light[i]) for k, l in enumerate(world.lights)]
        signs = [StopSign(id=2000 + k, x=s.x, y=s.y, stop_line=s.stop_line, affects_ego=True)
                 for k, s in enumerate(world.stop_signs)]
        n, idx = int(self.route_n[i]), int(round(self.progress[i]))
        obs_key = self.key_points[i][np.isfinite(self.key_points[i]) & (self.key_points[i] > self.progress[i] + TARGET_MIN_DISTANCE)]
        target = self.route_pts[i, int(obs_key[0]) if len(obs_key) else n - 1]
        window = self.route_option[i, idx:idx + COMMAND_LOOKAHEAD]
        turning = window[window != ROAD_OPTION["LANEFOLLOW"]]
        road_option = int(turning[0]) if len(turning) else ROAD_OPTION["LANEFOLLOW"]
        return Scene(time=float(self.time[i]), town=world.town, ego=ego, actors=others,
                     lane_markings=world.network.lane_markings, road_edges=world.network.road_edges,
                     lane_centers=world.network.lane_centers(), traffic_lights=lights, stop_signs=signs,
                     route=self.route_pts[i, :n].copy(), route_progress_index=min(idx, n - 1),
                     command=path_index_from_road_option(road_option), road_option=road_option,
                     target_point=target.copy(), control=tuple(float(v) for v in self.control[i]),
                     acceleration=np.array([self.accel[i, 0], self.accel[i, 1], 0.0]),
                     angular_velocity=np.array([0.0, 0.0, float(self.yaw_rate[i])]),
                     scenario_type=meta["scenario_type"], weather_id=world.weather_id)

    def close(self) -> None:
        """Nothing to release for the embedded simulator."""

    def light_state_of(self, i: int) -> np.ndarray:
        return self._light_states(slice(i, i + 1))[0]

