"""The privileged rule-based expert (a data-collection autopilot) and the meta-action labeller.

Each tick the expert reads the true world state and plans like a careful driver:

1. path: the route centre line, shifted sideways to pass a blocked lane (only once the lane it
   borrows is clear), to make way for an emergency vehicle, or to keep clear of an invading
   oncoming car;
2. speed: the lowest of the speed limit, a curvature limit, and a braking envelope to every
   stop point -- leaders (stopping behind where they could stop), actors predicted to cross
   the path within 4 s, red/yellow lights and stop signs (stand still, then go);
3. control: the plan (path + speed waypoints, as the model outputs it) through ``PIDController``.

It labels the frame with its meta-action (``last_meta_action = (speed_idx, path_idx)``).
"""

from __future__ import annotations

import numpy as np

from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS, ROAD_OPTION, ROAD_OPTION_TO_PATH, WAYPOINT_DT
from minddrive.sim import actors as A
from minddrive.sim.controller import FAST_BAND, SLOW_BAND, PIDController, polyline_points_at, waypoints_along
from minddrive.sim.roads import LANE_WIDTH, right_normal

# Labeller thresholds (m/s, m/s^2). Documented in label_speed_action.
STOP_SPEED = 0.3
RAPID_DECEL = 3.0
ACCEL_THRESHOLD = 0.8

PLAN_LENGTH = 60                # m of route planned ahead
COMFORT_DECEL = 3.5             # m/s^2 for planned stops
MAX_DECEL = 8.0
LATERAL_ACCEL = 2.5             # m/s^2 in curves
CLEARANCE = 0.5                 # m lateral margin around other actors
STOP_GAP = 2.5                  # m bumper gap kept to obstacles
STATIC_GAP = 7.0                # m kept behind a standing obstacle, to pull out around it
PREDICTION = np.arange(0.0, 4.01, 0.5)


def label_speed_action(current_speed: float, future_speeds, dt: float) -> int:
    """Speed meta-action index (constants.SPEED_ACTIONS) from a speed profile sampled every ``dt``.

    Rules, first match wins: *stop* if the second half of the profile stays below 0.3 m/s;
    *slow down rapidly* if the mean deceleration exceeds 3 m/s^2; *slow down* / *speed up* if it
    exceeds 0.8 m/s^2 either way; otherwise *maintain* slow (< 5 m/s), moderate (< 10 m/s) or fast.
    """
    future = np.asarray(future_speeds, dtype=np.float64)
    if future.size == 0:
        raise ValueError("future_speeds: expected at least one value")
    if np.all(future[len(future) // 2:] < STOP_SPEED):
        return 1
    accel = (future[-1] - float(current_speed)) / (len(future) * dt)
    if accel < -RAPID_DECEL:
        return 6
    if accel < -ACCEL_THRESHOLD:
        return 4
    if accel > ACCEL_THRESHOLD:
        return 3
    mean = float(np.mean(future))
    return 2 if mean < SLOW_BAND else 0 if mean < FAST_BAND else 5


def label_path_action(road_option: int, lane_change: int = 0) -> int:
    """Path meta-action index: a lane change (-1 left, +1 right) wins over the navigation command."""
    if lane_change < 0:
        return 3
    if lane_change > 0:
        return 5
    return ROAD_OPTION_TO_PATH.get(int(road_option), 0)


class Expert:
    """Privileged autopilot for world ``world`` of an ``EmbeddedDriveEnv`` (or a ``VecDriveEnv``)."""

    def __init__(self, env, world: int = 0):
        self.core = getattr(env, "core", env)
        self.w = world
        self.controller = PIDController()
        self.offset_plan: tuple[float, float, float, float, float] | None = None  # (s0, s1, s2, s3, offset)
        self.last_meta_action: tuple[int, int] = (0, 0)
        self.last_plan: dict | None = None
        self._episode = None
        self._stood_since: float | None = None

    # ---------------------------------------------------------------------------------- the tick
    def act(self) -> np.ndarray:
        core, w = self.core, self.w
        if self._episode is not core.worlds[w]:       # a new episode: forget the old plan
            self._episode, self.offset_plan, self._stood_since = core.worlds[w], None, None
            self.controller.reset()
        speed, progress = float(core.speed[w]), float(core.progress[w])
        n = int(core.route_n[w])
        s = progress + np.arange(PLAN_LENGTH + 1, dtype=np.float64)
        idx = np.minimum(np.round(s).astype(int), n - 1)
        base = core.route_pts[w, idx]
        normal = right_normal(core.route_yaw[w, idx])
        self._update_offset(progress, speed)
        offset = self._offset_at(s) + self._invader_nudge(progress)
        path = base + offset[:, None] * normal
        v_allow = self._speed_envelope(s - progress, path, idx, speed, progress)
        speeds = self._profile(speed, v_allow)
        lane_change = self._lane_change_direction(progress)
        plan = self._to_ego_plan(path, speeds, speed)
        self.last_plan = plan
        road_option = int(self._road_option(progress))
        self.last_meta_action = (label_speed_action(speed, speeds, WAYPOINT_DT), label_path_action(road_option, lane_change))
        return self.controller(plan["path"], plan["speed_waypoints"], speed)

    # ---------------------------------------------------------------------------- speed planning
    def _speed_envelope(self, dist, path, idx, speed, progress) -> np.ndarray:
        core, w = self.core, self.w
        limit = core.route_limit[w, idx]
        # Curvature from the heading change over 4 m.
        d = np.diff(path, axis=0)
        heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        kappa = np.abs(np.gradient(heading)) + 1e-4
        kappa = np.append(np.convolve(kappa, np.ones(5) / 5, mode="same"), kappa[-1])
        v_point = np.minimum(limit, np.sqrt(LATERAL_ACCEL / kappa))
        stops = self._stop_points(path, dist, speed, progress)
        for s_stop in stops:
            v_point = np.minimum(v_point, np.where(dist >= s_stop, 0.0, np.inf))
        # Backward pass: every point's speed must allow braking to all later points.
        v_allow = v_point.copy()
        for k in range(len(v_allow) - 2, -1, -1):
            v_allow[k] = min(v_allow[k], np.sqrt(v_allow[k + 1] ** 2 + 2 * COMFORT_DECEL * (dist[k + 1] - dist[k])))
        for s_stop in stops:
            if s_stop <= 0.5:
                v_allow[:] = 0.0
        return v_allow

    def _stop_points(self, path, dist, speed, progress) -> list[float]:
        """Distances along the plan (ego centre) where the ego must be standing."""
        core, w, act = self.core, self.w, self.core.actors
        stops = []
        hl = A.EGO_EXTENT[0]
        ego_yaw = float(core.yaw[w])
        # Actors: predicted positions along their own paths.
        for m in np.nonzero(act.present[w])[0]:
            v = float(act.speed[w, m]) if act.started[w, m] else 0.0
            if act.mode[w, m] == A.MODE_STATIC:
                v = 0.0
            s_future = np.minimum(act.s[w, m] + v * PREDICTION, act.path_len[w, m])
            future = A.sample_path(act.paths[w, m], s_future)
            px, py = future[:, 0], future[:, 1]
            ahead = (px[0] - core.x[w]) * np.cos(ego_yaw) + (py[0] - core.y[w]) * np.sin(ego_yaw)
            aligned = abs(float(np.angle(np.exp(1j * (act.yaw[w, m] - ego_yaw))))) < 0.6
            if ahead < -hl and aligned:
                continue                                # behind us and going our way (e.g. the emergency vehicle)
            diff = path[None, :, :] - np.stack([px, py], -1)[:, None, :]
            gap = np.linalg.norm(diff, axis=-1)          # (T, plan)
            # The actor's half size across our path: its half width, growing to its half length when crosswise.
            across = act.half_width[w, m] + abs(np.sin(act.yaw[w, m] - ego_yaw)) * (act.half_length[w, m] - act.half_width[w, m])
            reach = A.EGO_EXTENT[1] + across + CLEARANCE
            for t_i in range(len(PREDICTION)):
                hits = np.nonzero(gap[t_i] < reach)[0]
                if len(hits) == 0:
                    continue
                s_c = dist[hits[0]]
                if aligned and t_i == 0:
                    # A leader: stop behind where it could stop itself.
                    s_stop = s_c - hl - act.half_length[w, m] - STOP_GAP + v * v / (2 * 6.0)
                elif act.mode[w, m] == A.MODE_STATIC:
                    # Room to steer around it where there is a lane to borrow; else pull up behind it.
                    room = STATIC_GAP if self._side_for_pass(progress + s_c) != 0.0 else STOP_GAP
                    s_stop = s_c - hl - act.half_length[w, m] - room
                else:
                    s_stop = s_c - hl - act.half_width[w, m] - STOP_GAP
                if s_stop > -hl:
                    stops.append(max(s_stop, 0.0))
                break
        # Traffic light of the ego's lane.
        light = int(core.ego_light[w])
        if light >= 0:
            state = int(core.light_state_of(w)[light])
            line = float(core.criteria.light_stop_s[w]) - progress      # distance of the stop line from the ego centre
            front = line - hl
            # Never wait half across the stop line (the light may turn red over our tail): a
            # yield point just past the line becomes the line itself.
            if front > -0.5:
                stops = [front - 1.0 if front - 1.0 < st < line + 2 * hl else st for st in stops]
            if state != 2 and front > -0.5:
                can_stop = front > speed * speed / (2 * 5.0) or state == 0
                if can_stop:
                    stops.append(max(front - 1.0, 0.0))
        # Stop sign: stand still in the zone, then go.
        sign_s = float(core.criteria.stop_sign_s[w])
        if np.isfinite(sign_s) and not core.criteria.stood_at_sign[w]:
            stops.append(max(sign_s - progress - hl - 0.5, 0.0))
        return stops

    def _profile(self, speed: float, v_allow: np.ndarray) -> np.ndarray:
        """Speeds at the 6 waypoint times: accelerate gently, never above the envelope."""
        speeds, v, s = [], speed, 0.0
        for _ in range(NUM_FUTURE_WAYPOINTS):
            target = float(np.interp(s + v * WAYPOINT_DT, np.arange(len(v_allow)), v_allow))
            new_v = min(v + 2.0 * WAYPOINT_DT, target)
            new_v = max(new_v, v - MAX_DECEL * WAYPOINT_DT, 0.0)
            s += 0.5 * (v + new_v) * WAYPOINT_DT
            speeds.append(new_v)
            v = new_v
        return np.array(speeds)

    # ----------------------------------------------------------------------------- path planning
    def _offset_at(self, s: np.ndarray) -> np.ndarray:
        if self.offset_plan is None:
            return np.zeros_like(s)
        s0, s1, s2, s3, off = self.offset_plan
        up = np.clip((s - s0) / max(s1 - s0, 1e-3), 0, 1)
        down = np.clip((s3 - s) / max(s3 - s2, 1e-3), 0, 1)
        ramp = np.minimum(up, down)
        return off * ramp * ramp * (3 - 2 * ramp)

    def _lane_change_direction(self, progress: float) -> int:
        if self.offset_plan is None:
            return 0
        s0, s1, s2, s3, off = self.offset_plan
        if s0 - 5 <= progress <= s1:
            return int(np.sign(off))
        if s2 <= progress <= s3:
            return -int(np.sign(off))
        return 0

    def _side_for_pass(self, at: float) -> float:
        """Lateral offset to borrow the neighbouring lane at route distance ``at`` (the obstacle's; a junction
        before it has no lane bounds): left if there is one (or two-way), else right."""
        core, w = self.core, self.w
        i = int(min(round(at), core.route_n[w] - 1))
        lo, hi = core.route_lo[w, i], core.route_hi[w, i]
        if lo < -LANE_WIDTH or core.criteria.lane_off[w, 0] < np.inf:
            return -LANE_WIDTH
        return LANE_WIDTH if hi > LANE_WIDTH else 0.0

    def _update_offset(self, progress: float, speed: float) -> None:
        core, w, act = self.core, self.w, self.core.actors
        n = int(core.route_n[w])
        # Emergency vehicle closing in from behind: make way to the neighbouring lane and stay
        # there until it is well ahead.
        ev = int(core.criteria.ev_slot[w])
        if ev >= 0 and act.active[w, ev] and act.started[w, ev]:
            behind = -core._ahead_of_ego()[w, ev]
            if -12.0 < behind < 80.0:
                if self.offset_plan is None:
                    side = LANE_WIDTH if core.route_hi[w, int(min(progress, n - 1))] > LANE_WIDTH else -LANE_WIDTH
                    self.offset_plan = (progress, progress + 15, progress + 40, progress + 55, side)
                else:
                    s0, s1, _, _, side = self.offset_plan
                    self.offset_plan = (s0, s1, max(s1, progress + 40), max(s1, progress + 40) + 15, side)
                return
        if self.offset_plan is not None and progress > self.offset_plan[3]:
            self.offset_plan = None
        if self.offset_plan is not None:
            return
        # A standing obstacle in the lane ahead: pass it once the borrowed lane is clear.
        blockers = []
        for m in np.nonzero(act.present[w] & ((act.mode[w] == A.MODE_STATIC) | (act.speed[w] < 0.1) & ~act.started[w]))[0]:
            j = self._route_index_of(act.x[w, m], act.y[w, m], progress)
            if j is None:
                continue
            lat = float(np.dot([act.x[w, m], act.y[w, m]] - core.route_pts[w, j], right_normal(core.route_yaw[w, j])))
            if abs(lat) < A.EGO_EXTENT[1] + act.half_width[w, m] + CLEARANCE and act.mode[w, m] == A.MODE_STATIC:
                blockers.append((j, act.half_length[w, m]))
        if not blockers:
            return
        first = min(j - hl for j, hl in blockers)
        last = max(j + hl for j, hl in blockers)
        if first - progress > 45:
            return
        side = self._side_for_pass(first)
        if side == 0.0:
            return
        start = max(progress + 1.0, first - 18.0)
        plan = (start, max(first - 3.0, start + 7.0), last + 5.0, last + 17.0, side)
        if self._lane_clear(plan, progress, speed):
            self.offset_plan = plan

    def _lane_clear(self, plan, progress: float, speed: float) -> bool:
        """No other actor will be in the borrowed lane near the pass while we are in it."""
        core, w, act = self.core, self.w, self.core.actors
        s0, s1, s2, s3, off = plan
        duration = (s3 - progress) / max(speed, 3.0) + 3.0
        times = np.arange(0.0, duration, 0.5)
        for m in np.nonzero(act.active[w] & (act.mode[w] != A.MODE_STATIC))[0]:
            v = float(act.speed[w, m]) if act.started[w, m] else 0.0
            future = A.sample_path(act.paths[w, m], np.minimum(act.s[w, m] + v * times, act.path_len[w, m]))
            for (px, py), t in zip(future, times):
                j = self._route_index_of(px, py, progress - 30)
                if j is None:
                    continue
                lat = float(np.dot([px - core.route_pts[w, j, 0], py - core.route_pts[w, j, 1]], right_normal(core.route_yaw[w, j])))
                ego_s = progress + max(speed, 3.0) * t
                if abs(lat - off) < LANE_WIDTH * 0.8 and s0 - 15 < j < s3 + 15 and abs(j - ego_s) < 25:
                    return False
        return True

    def _route_index_of(self, x: float, y: float, near: float):
        core, w = self.core, self.w
        n = int(core.route_n[w])
        lo = int(max(near - 10, 0))
        hi = int(min(near + 120, n - 1))
        if hi <= lo:
            return None
        pts = core.route_pts[w, lo:hi]
        d = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
        j = int(np.argmin(d))
        return lo + j if d[j] < 8.0 else None

    def _invader_nudge(self, progress: float) -> float:
        """Shift right when an oncoming car crowds our lane (InvadingTurn)."""
        core, w, act = self.core, self.w, self.core.actors
        need = 0.0
        for m in np.nonzero(act.active[w] & (act.mode[w] == A.MODE_IDM))[0]:
            j = self._route_index_of(act.x[w, m], act.y[w, m], progress)
            if j is None or j < progress - 5 or j > progress + 45:
                continue
            oncoming = np.cos(act.yaw[w, m] - core.route_yaw[w, j]) < -0.5
            lat = float(np.dot([act.x[w, m] - core.route_pts[w, j, 0], act.y[w, m] - core.route_pts[w, j, 1]],
                               right_normal(core.route_yaw[w, j])))
            reach = A.EGO_EXTENT[1] + act.half_width[w, m] + CLEARANCE
            if oncoming and -LANE_WIDTH - 0.5 < lat < 0 and -lat < reach:
                need = max(need, min(reach + lat + 0.2, 1.4))
        return need

    # ---------------------------------------------------------------------------------- helpers
    def _road_option(self, progress: float) -> int:
        core, w = self.core, self.w
        n = int(core.route_n[w])
        window = core.route_option[w, int(progress):min(int(progress) + 15, n)]
        turning = window[window != ROAD_OPTION["LANEFOLLOW"]]
        return int(turning[0]) if len(turning) else ROAD_OPTION["LANEFOLLOW"]

    def _to_ego_plan(self, path: np.ndarray, speeds: np.ndarray, speed: float) -> dict:
        ego = self._to_ego_one(path)
        ahead = ego[1:]                                  # path point 0 is the ego's projection
        path_pts = polyline_points_at(ahead, 2.0 * np.arange(1, NUM_PATH_POINTS + 1))
        return dict(path=path_pts, speed_waypoints=waypoints_along(ahead, speeds, speed), speeds=speeds,
                    path_world=path)

    def _to_ego_one(self, pts: np.ndarray) -> np.ndarray:
        core, w = self.core, self.w
        d = pts - np.array([core.x[w], core.y[w]])
        c, s = np.cos(core.yaw[w]), np.sin(core.yaw[w])
        return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], -1)
