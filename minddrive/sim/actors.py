"""Actor models, written over arrays so one call moves every actor of every world.

* Ego: kinematic bicycle driven by CARLA-like control (steer, throttle, brake).
* NPCs (vehicles, bicycles, emergency vehicles, walkers): each follows its own path polyline
  resampled every metre, so the pose at arc length ``s`` is a linear interpolation between
  points ``floor(s)`` and ``floor(s) + 1``. Lane followers use the Intelligent Driver Model
  (IDM, Treiber et al. 2000) against the nearest actor in a corridor ahead and against red
  stop lines on their path; scripted actors (crossing walkers, red-light runners) move at a
  fixed speed once triggered and ignore everyone.
* Collision tests are oriented-box overlaps by the separating-axis theorem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- ego vehicle (a Lincoln MKZ-sized car) ---------------------------------------------------------
EGO_TYPE_ID = "vehicle.lincoln.mkz_2020"
EGO_EXTENT = (2.44, 1.06, 0.76)   # half length, half width, half height (m), as Bench2Drive writes them
WHEELBASE = 2.85                  # m
MAX_STEER = np.deg2rad(40.0)      # front-wheel angle at steer = +-1
STEER_TIME_CONSTANT = 0.1         # s, first-order lag of the steering column
MAX_ACCEL = 4.0                   # m/s^2 at full throttle from standstill
MAX_BRAKE = 8.0                   # m/s^2 at full brake
TOP_SPEED = 30.0                  # m/s; drive force fades linearly towards it
DRAG = 0.0015                     # 1/m, aerodynamic term (a = DRAG * v^2)
ROLLING = 0.1                     # m/s^2

# --- NPC behaviour modes ----------------------------------------------------------------------------
MODE_IDM = 0        # lane follower: IDM towards its desired speed, stops for leaders and red lights
MODE_SCRIPTED = 1   # constant speed along its path once triggered, blind to everything
MODE_STATIC = 2     # never moves (parked cars, accident wrecks, cones)
END_MODES = ("leave", "park", "loop")   # what a moving actor does at the end of its path

IDM_TIME_HEADWAY = 1.2   # s
IDM_MIN_GAP = 2.5        # m
IDM_DELTA = 4.0
LOOKAHEAD = 50.0         # m, corridor in which an IDM actor looks for a leader


@dataclass
class ActorSpec:
    """One non-ego actor as a scenario places it."""

    kind: str                        # vehicle | emergency | bicycle | walker | static | prop
    type_id: str
    path: np.ndarray                 # (P, 2) world polyline it moves along (1 point for static actors)
    s0: float = 0.0                  # start arc length on ``path``
    speed: float = 0.0               # initial speed (m/s)
    desired_speed: float = 8.0       # IDM v0 or the scripted speed
    extent: tuple[float, float, float] = (2.3, 1.0, 0.75)
    mode: int = MODE_IDM
    max_accel: float = 2.0
    comfort_decel: float = 3.0
    start_trigger: float = -np.inf   # ego route distance (m) at which it starts moving
    brake_trigger: float = np.inf    # ego route distance at which it brakes hard (HardBreakRoute)
    brake_hold: float = 4.0          # s standing still after the hard brake
    stop_s: float = np.inf           # arc length of the stop line it obeys on ``path``
    light: int = -1                  # index of the traffic light guarding that stop line (-1: none)
    sees_ego: bool = True            # IDM treats the ego as a leader when it is in the corridor
    background: bool = False         # counts as "surrounding traffic" for the min-speed test
    role: str = ""                   # free scenario tag, e.g. "blocker", "emergency", "crossing"
    yaw_override: float | None = None  # heading of a static actor (default: along its path)
    speed_over_ego: float = np.nan   # IDM v0 = ego speed + this (an emergency vehicle's adaptive speed)
    # Bench2Drive's InTimeToArrivalToLocation: also start once the ego, at its current speed, is at most
    # ``arrival_time`` s from route distance ``arrival_point`` (either trigger suffices).
    arrival_point: float = np.nan
    arrival_time: float = 0.0
    start_delay: float = 0.0         # s idle between the trigger and the first move (Idle before KeepVelocity)
    hidden_until_start: bool = False  # absent (no box, no contact) until triggered, e.g. an opening door
    remove_after: float = np.inf     # s after the trigger at which it leaves the map (ActorDestroy after Idle)
    at_path_end: str = "leave"       # leave the map | park (hand brake, stays) | loop (back to the source: a flow)


def ego_dynamics(x, y, yaw, speed, steer_angle, control, dt):
    """Advance ego states (arrays of shape (N,)) one tick under ``control`` (N, 3)."""
    steer_cmd, throttle, brake = control[:, 0], control[:, 1], control[:, 2]
    steer_angle = steer_angle + (steer_cmd * MAX_STEER - steer_angle) * min(1.0, dt / STEER_TIME_CONSTANT)
    drive = throttle * MAX_ACCEL * np.clip(1.0 - speed / TOP_SPEED, 0.0, 1.0)
    resist = brake * MAX_BRAKE + DRAG * speed ** 2 + ROLLING * (speed > 0)
    accel = np.where(drive > 0, drive - resist, -resist)
    new_speed = np.maximum(speed + accel * dt, 0.0)  # brakes never push backwards
    mean_speed = 0.5 * (speed + new_speed)
    yaw_rate = mean_speed * np.tan(steer_angle) / WHEELBASE
    new_yaw = yaw + yaw_rate * dt
    mid_yaw = yaw + 0.5 * yaw_rate * dt
    x = x + mean_speed * np.cos(mid_yaw) * dt
    y = y + mean_speed * np.sin(mid_yaw) * dt
    accel = (new_speed - speed) / dt
    return x, y, new_yaw, new_speed, steer_angle, accel, yaw_rate


def idm_acceleration(speed, desired, gap, lead_speed, max_accel, comfort_decel):
    """IDM acceleration; ``gap`` is bumper-to-bumper distance (inf when nothing is ahead)."""
    desired = np.maximum(desired, 0.1)
    dv = speed - lead_speed
    s_star = IDM_MIN_GAP + np.maximum(0.0, speed * IDM_TIME_HEADWAY + speed * dv / (2 * np.sqrt(max_accel * comfort_decel)))
    free = 1.0 - (speed / desired) ** IDM_DELTA
    interaction = (s_star / np.maximum(gap, 0.1)) ** 2
    return max_accel * (free - np.where(np.isfinite(gap), interaction, 0.0))


def path_pose(paths, s):
    """Pose on dense (1 m) paths: ``paths`` (..., P, 2), ``s`` (...) -> x, y, yaw (each (...))."""
    num = paths.shape[-2]
    s = np.clip(s, 0.0, num - 1.001)
    i0 = np.floor(s).astype(np.int64)
    frac = (s - i0)[..., None]
    p0 = np.take_along_axis(paths, i0[..., None, None].repeat(2, -1), axis=-2)[..., 0, :]
    p1 = np.take_along_axis(paths, (i0 + 1)[..., None, None].repeat(2, -1), axis=-2)[..., 0, :]
    xy = p0 + frac * (p1 - p0)
    d = p1 - p0
    return xy[..., 0], xy[..., 1], np.arctan2(d[..., 1], d[..., 0])


def sample_path(path: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points (T, 2) at arc lengths ``s`` (T,) of one dense (1 m) path (P, 2)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, len(path) - 1.001)
    i0 = np.floor(s).astype(np.int64)
    return path[i0] + (s - i0)[:, None] * (path[i0 + 1] - path[i0])


def box_corners(x, y, yaw, half_length, half_width):
    """Corners (..., 4, 2) of oriented boxes."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    lx = np.array([1, 1, -1, -1]) * np.asarray(half_length)[..., None]
    ly = np.array([1, -1, -1, 1]) * np.asarray(half_width)[..., None]
    return np.stack([x[..., None] + lx * c - ly * s, y[..., None] + lx * s + ly * c], axis=-1)


def boxes_overlap(a, b):
    """Separating-axis test between oriented boxes ``a`` (..., 5) and ``b`` (..., 5): x, y, yaw, hl, hw."""
    ca = box_corners(a[..., 0], a[..., 1], a[..., 2], a[..., 3], a[..., 4])
    cb = box_corners(b[..., 0], b[..., 1], b[..., 2], b[..., 3], b[..., 4])
    separated = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=bool)
    for yaw in (a[..., 2], b[..., 2]):
        for axis in (np.stack([np.cos(yaw), np.sin(yaw)], -1), np.stack([-np.sin(yaw), np.cos(yaw)], -1)):
            pa = np.einsum("...kd,...d->...k", ca, axis)
            pb = np.einsum("...kd,...d->...k", cb, axis)
            separated |= (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    return ~separated


@dataclass
class ActorArrays:
    """Every world's NPCs as padded arrays (W worlds x M slots); ``active`` marks real actors."""

    paths: np.ndarray            # (W, M, P, 2)
    path_len: np.ndarray         # (W, M) usable arc length of each path
    s: np.ndarray                # (W, M)
    speed: np.ndarray
    desired: np.ndarray
    max_accel: np.ndarray
    comfort_decel: np.ndarray
    half_length: np.ndarray
    half_width: np.ndarray
    mode: np.ndarray             # int
    start_trigger: np.ndarray
    brake_trigger: np.ndarray
    brake_hold: np.ndarray
    brake_until: np.ndarray      # game time until which a hard-braked actor stays put (-inf: not braking)
    stop_s: np.ndarray
    light: np.ndarray            # int
    sees_ego: np.ndarray         # bool
    background: np.ndarray       # bool
    active: np.ndarray           # bool
    started: np.ndarray          # bool
    yaw_fixed: np.ndarray        # NaN unless the actor has a fixed heading
    speed_over_ego: np.ndarray   # NaN unless the actor's desired speed follows the ego's
    arrival_point: np.ndarray    # NaN unless a time-to-arrival trigger applies
    arrival_time: np.ndarray
    start_delay: np.ndarray
    started_at: np.ndarray       # game time of the trigger (inf before)
    hidden: np.ndarray           # bool: absent until started
    remove_after: np.ndarray
    end_mode: np.ndarray         # int: 0 leave, 1 park, 2 loop
    x: np.ndarray = field(default=None)
    y: np.ndarray = field(default=None)
    yaw: np.ndarray = field(default=None)

    @classmethod
    def empty(cls, worlds: int, slots: int, path_points: int) -> "ActorArrays":
        f = lambda v=0.0: np.full((worlds, slots), v, dtype=np.float64)
        arrays = cls(paths=np.zeros((worlds, slots, path_points, 2)), path_len=f(), s=f(), speed=f(), desired=f(1.0),
                     max_accel=f(1.0), comfort_decel=f(1.0), half_length=f(), half_width=f(),
                     mode=np.full((worlds, slots), MODE_STATIC), start_trigger=f(), brake_trigger=f(np.inf),
                     brake_hold=f(), brake_until=f(-np.inf), stop_s=f(np.inf), light=np.full((worlds, slots), -1),
                     sees_ego=np.zeros((worlds, slots), bool), background=np.zeros((worlds, slots), bool),
                     active=np.zeros((worlds, slots), bool), started=np.zeros((worlds, slots), bool),
                     yaw_fixed=f(np.nan), speed_over_ego=f(np.nan), arrival_point=f(np.nan), arrival_time=f(),
                     start_delay=f(), started_at=f(np.inf), hidden=np.zeros((worlds, slots), bool),
                     remove_after=f(np.inf), end_mode=np.zeros((worlds, slots), np.int64))
        arrays.x, arrays.y, arrays.yaw = f(1e6), f(1e6), f()
        return arrays

    def load(self, world: int, specs: list[ActorSpec]) -> None:
        """Write one world's actors into its row (resetting unused slots)."""
        slots, cap = self.s.shape[1], self.paths.shape[2]
        if len(specs) > slots:
            raise ValueError(f"scenario has {len(specs)} actors; the world holds at most {slots}")
        for name in ("path_len", "s", "speed", "half_length", "half_width", "start_trigger", "brake_hold"):
            getattr(self, name)[world] = 0.0
        self.paths[world] = 0.0
        self.mode[world], self.active[world], self.started[world] = MODE_STATIC, False, False
        self.brake_trigger[world], self.brake_until[world], self.stop_s[world] = np.inf, -np.inf, np.inf
        self.light[world], self.sees_ego[world], self.background[world] = -1, False, False
        self.yaw_fixed[world] = np.nan
        self.speed_over_ego[world] = np.nan
        self.arrival_point[world], self.arrival_time[world], self.start_delay[world] = np.nan, 0.0, 0.0
        self.started_at[world], self.hidden[world], self.remove_after[world] = np.inf, False, np.inf
        self.end_mode[world] = 0
        self.x[world], self.y[world] = 1e6, 1e6
        for k, spec in enumerate(specs):
            path = np.asarray(spec.path, dtype=np.float64).reshape(-1, 2)
            if len(path) == 1:
                path = np.concatenate([path, path + [1e-3, 0.0]])
            if len(path) > cap:
                raise ValueError(f"actor {k} ({spec.kind}) path has {len(path)} points; the world holds {cap}")
            self.paths[world, k, :len(path)] = path
            self.paths[world, k, len(path):] = path[-1] + (path[-1] - path[-2]) * np.arange(1, cap - len(path) + 1)[:, None]
            self.path_len[world, k] = len(path) - 1
            self.s[world, k], self.speed[world, k] = spec.s0, spec.speed
            self.desired[world, k], self.max_accel[world, k] = spec.desired_speed, spec.max_accel
            self.comfort_decel[world, k] = spec.comfort_decel
            self.half_length[world, k], self.half_width[world, k] = spec.extent[0], spec.extent[1]
            self.mode[world, k] = spec.mode
            self.start_trigger[world, k], self.brake_trigger[world, k] = spec.start_trigger, spec.brake_trigger
            self.brake_hold[world, k], self.stop_s[world, k], self.light[world, k] = spec.brake_hold, spec.stop_s, spec.light
            self.sees_ego[world, k], self.background[world, k] = spec.sees_ego, spec.background
            self.active[world, k] = True
            self.started[world, k] = spec.start_trigger == -np.inf
            self.speed_over_ego[world, k] = spec.speed_over_ego
            self.arrival_point[world, k], self.arrival_time[world, k] = spec.arrival_point, spec.arrival_time
            self.start_delay[world, k], self.hidden[world, k] = spec.start_delay, spec.hidden_until_start
            self.remove_after[world, k] = spec.remove_after
            self.end_mode[world, k] = END_MODES.index(spec.at_path_end)
            self.started_at[world, k] = 0.0 if self.started[world, k] else np.inf
            if spec.yaw_override is not None:
                self.yaw_fixed[world, k] = spec.yaw_override
        self.update_poses(np.array([world]))

    def update_poses(self, worlds=slice(None)) -> None:
        x, y, yaw = path_pose(self.paths[worlds], self.s[worlds])
        fixed = self.yaw_fixed[worlds]
        yaw = np.where(np.isnan(fixed), yaw, fixed)
        active = self.present[worlds]
        self.x[worlds], self.y[worlds], self.yaw[worlds] = np.where(active, x, 1e6), np.where(active, y, 1e6), yaw

    @property
    def present(self) -> np.ndarray:
        """(W, M) actors on the map now: active and not waiting hidden for their trigger."""
        return self.active & (self.started | ~self.hidden)

    def crash(self, hit: np.ndarray) -> None:
        """Actors ``hit`` (W, M) in contact with the ego stop where they are and stay there."""
        self.speed[hit] = 0.0
        self.mode[hit] = MODE_STATIC
        self.brake_until[hit] = -np.inf

    def boxes(self) -> np.ndarray:
        """(W, M, 5) x, y, yaw, half length, half width."""
        return np.stack([self.x, self.y, self.yaw, self.half_length, self.half_width], axis=-1)


def leader_gaps(actors: ActorArrays, ego_box: np.ndarray, ego_speed: np.ndarray):
    """Bumper gap and speed of the nearest actor (or ego) in each IDM actor's corridor ahead.

    Returns (gap, lead_speed), each (W, M); gap is inf where the corridor is empty.
    """
    boxes = actors.boxes()
    others = np.concatenate([boxes, ego_box[:, None, :]], axis=1)                  # (W, M+1, 5)
    other_speed = np.concatenate([actors.speed, ego_speed[:, None]], axis=1)
    other_active = np.concatenate([actors.present, np.ones((len(ego_speed), 1), bool)], axis=1)
    dx_w = others[:, None, :, 0] - boxes[:, :, None, 0]                            # (W, M, M+1)
    dy_w = others[:, None, :, 1] - boxes[:, :, None, 1]
    c, s = np.cos(boxes[:, :, 2])[..., None], np.sin(boxes[:, :, 2])[..., None]
    ahead = dx_w * c + dy_w * s
    lateral = -dx_w * s + dy_w * c
    gap = ahead - boxes[:, :, None, 3] - others[:, None, :, 3]
    corridor = np.abs(lateral) < boxes[:, :, None, 4] + others[:, None, :, 4] + 0.3
    candidate = corridor & (ahead > 0) & (ahead < LOOKAHEAD) & other_active[:, None, :]
    slots = boxes.shape[1]
    candidate[:, np.arange(slots), np.arange(slots)] = False                       # not oneself
    candidate[:, :, -1] &= actors.sees_ego
    gap = np.where(candidate, gap, np.inf)
    nearest = np.argmin(gap, axis=-1)
    best = np.take_along_axis(gap, nearest[..., None], -1)[..., 0]
    lead_speed = np.take_along_axis(np.broadcast_to(other_speed[:, None, :], gap.shape), nearest[..., None], -1)[..., 0]
    return best, np.where(np.isfinite(best), lead_speed, 0.0)


def step_actors(actors: ActorArrays, ego_box: np.ndarray, ego_speed: np.ndarray, ego_progress: np.ndarray,
                light_red: np.ndarray, time: float | np.ndarray, dt: float) -> None:
    """Advance every NPC one tick in place. ``light_red`` (W, L) is True where a light says stop."""
    progress = ego_progress[:, None]
    now = np.asarray(time, dtype=np.float64).reshape(-1, 1)
    arriving = (actors.arrival_point - progress) <= ego_speed[:, None] * actors.arrival_time   # False while NaN
    starting = actors.active & ~actors.started & ((progress >= actors.start_trigger) | arriving)
    actors.started |= starting
    actors.started_at = np.where(starting, now, actors.started_at)
    # ActorDestroy after an Idle: the actor leaves the map remove_after s after its trigger.
    actors.active &= ~(now - actors.started_at >= actors.remove_after)
    # An actor following the ego's speed enters at it (Bench2Drive sets the emergency vehicle's velocity).
    adaptive = starting & ~np.isnan(actors.speed_over_ego)
    actors.speed = np.where(adaptive, ego_speed[:, None] + np.nan_to_num(actors.speed_over_ego), actors.speed)
    newly_braking = actors.active & (progress >= actors.brake_trigger) & ~np.isfinite(actors.brake_until)
    actors.brake_until = np.where(newly_braking, now + actors.brake_hold, actors.brake_until)

    gap, lead_speed = leader_gaps(actors, ego_box, ego_speed)
    # A red stop line ahead is a standing leader at the line.
    light_idx = np.clip(actors.light, 0, None)
    red = (actors.light >= 0) & np.take_along_axis(light_red, light_idx, axis=1)
    line_gap = actors.stop_s - actors.s - actors.half_length
    stops = red & (line_gap > -0.5) & (line_gap < gap)
    gap = np.where(stops, np.maximum(line_gap, 0.0), gap)
    lead_speed = np.where(stops, 0.0, lead_speed)

    desired = np.where(np.isnan(actors.speed_over_ego), actors.desired, ego_speed[:, None] + actors.speed_over_ego)
    accel = idm_acceleration(actors.speed, desired, gap, lead_speed, actors.max_accel, actors.comfort_decel)
    accel = np.maximum(accel, -9.0)
    braking = now < actors.brake_until
    accel = np.where(braking, -7.0, accel)
    idm_speed = np.maximum(actors.speed + accel * dt, 0.0)
    scripted_speed = actors.desired
    speed = np.select([actors.mode == MODE_IDM, actors.mode == MODE_SCRIPTED], [idm_speed, scripted_speed], 0.0)
    moving = actors.started & actors.active & (now - actors.started_at >= actors.start_delay)
    speed = np.where(moving, speed, 0.0)
    actors.s = np.minimum(actors.s + 0.5 * (actors.speed + speed) * dt * (actors.mode != MODE_STATIC), actors.path_len)
    actors.speed = speed
    # Moving actors that reach the end of their path leave the map, park there, or (a flow) re-enter at
    # the source when nothing stands there.
    at_end = (actors.s >= actors.path_len - 0.01) & (actors.mode != MODE_STATIC)
    if at_end.any():
        park = at_end & (actors.end_mode == 1)
        actors.mode = np.where(park, MODE_STATIC, actors.mode)
        actors.speed = np.where(park, 0.0, actors.speed)
        loop = at_end & (actors.end_mode == 2)
        if loop.any():
            # The source is free when no other flow actor of the world is within 8 m of it.
            same = (actors.end_mode == 2) & actors.active
            near_source = (same & (actors.s < 8.0)).any(1, keepdims=True)
            loop &= ~near_source
            actors.s = np.where(loop, 0.0, actors.s)
        actors.active &= ~(at_end & (actors.end_mode == 0))
    actors.update_poses()
