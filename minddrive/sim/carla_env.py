"""The CARLA backend: a :class:`~minddrive.sim.base.DriveEnv` on a CARLA 0.9.15 server.

Same observation, ``info`` and ``route_record()`` as the embedded simulator, so the rollout
collector, the closed-loop driver and the leaderboard agent run on it unchanged
(``env=dict(type="CarlaDriveEnv", port=..., tm_port=...)``).

Layout: the pure logic -- route densification and tracking, navigation commands, observation
building from sensor data, the infraction criteria and record building -- lives in functions
and small classes without a ``carla`` import (tested without a server). :class:`CarlaDriveEnv`
only moves data between them and the ``carla`` client API, which is imported lazily.

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
==========================  ================================================================

A server that stops answering (tick timeout) ends the episode with status
``Failed - Simulation crashed``; the next ``reset`` reconnects, restarting the server first
when ``launch_command`` is configured.
"""

from __future__ import annotations

import functools
import math
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from minddrive.constants import (B2D_IMAGE_SIZE, CAMERA_NAMES, CAMERA_RIG, EGO_STATE_FIELDS, INFRACTION_KEYS,
                                 ROAD_OPTION, path_index_from_road_option)
from minddrive.errors import UserError
from minddrive.registry import ENVS
from minddrive.sim.base import (KEY_POINT_SPACING, NUM_ROUTE_POINTS, ROUTE_NODES, ROUTE_POINT_SPACING, TARGET_MIN_DISTANCE,
                               DriveEnv, validate_control)
from minddrive.sim.records import route_record, score_penalty
from minddrive.sim.routes import RouteSpec
from minddrive.utils.geometry import navigation_route

EGO_BLUEPRINT = "vehicle.lincoln.mkz_2020"
CRASH_STATUS = "Failed - Simulation crashed"
TICK_LIMIT = 4000                      # Bench2Drive v0.0.2+: 200 s of game time at 20 Hz
OFFROAD_MAX = 30.0                     # InRouteTest: metres off the route that end the episode
BLOCKED_SPEED, BLOCKED_TIME = 0.1, 60.0
COLLISION_DEDUP_TIME, COLLISION_DEDUP_DIST = 5.0, 5.0
COMPLETION_DONE_PERCENT, COMPLETION_DONE_DIST = 99.0, 10.0
COMMAND_LOOKAHEAD = 15.0               # metres: a turn/lane change this close becomes the command


# ================================================================================ route geometry
@dataclass
class DenseRoute:
    """The route the leaderboard drives: keypoints densified to ~1 m hops, one RoadOption per point."""

    points: np.ndarray                 # (N, 3) world x, y, z
    options: np.ndarray                # (N,) int CARLA RoadOption values
    cumulative: np.ndarray = field(init=False)  # (N,) metres along the route at each point

    def __post_init__(self) -> None:
        steps = np.linalg.norm(np.diff(self.points[:, :2], axis=0), axis=1)
        self.cumulative = np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        return float(self.cumulative[-1])


def densify_route(keypoints: np.ndarray, trace: Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, int]]]
                  ) -> DenseRoute:
    """The leaderboard's ``interpolate_trajectory``: trace each consecutive keypoint pair, concatenate.

    ``trace(a, b)`` returns ``[(xyz, road_option), ...]`` from a to b -- CARLA's
    ``GlobalRoutePlanner.trace_route`` with hop 1.0 m on a server (see :func:`carla_tracer`).
    """
    points, options = [], []
    for a, b in zip(keypoints[:-1], keypoints[1:]):
        for xyz, option in trace(np.asarray(a, dtype=float), np.asarray(b, dtype=float)):
            if points and np.linalg.norm(np.asarray(xyz)[:2] - points[-1][:2]) < 1e-3:
                continue                     # the segment joint appears twice
            points.append(np.asarray(xyz, dtype=float))
            options.append(int(option))
    if len(points) < 2:
        raise UserError("route: densified route has fewer than 2 points (keypoints too close or unreachable)")
    return DenseRoute(np.stack(points), np.asarray(options, dtype=np.int64))


def straight_tracer(hop: float = 1.0) -> Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, int]]]:
    """A map-free tracer (straight segments, LANEFOLLOW): for tests and maps without a planner."""
    def trace(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, int]]:
        n = max(int(math.ceil(np.linalg.norm(b[:2] - a[:2]) / hop)), 1)
        return [(a + (b - a) * i / n, ROAD_OPTION["LANEFOLLOW"]) for i in range(n + 1)]
    return trace


def to_ego_frame(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """World (N, 2) -> ego frame (x forward, y right) of a vehicle at (x, y) with ``yaw`` (rad, CARLA)."""
    c, s = math.cos(yaw), math.sin(yaw)
    d = np.asarray(points, dtype=np.float64)[:, :2] - np.array([x, y])
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], axis=1)


class RouteTracker:
    """Where the ego is along the route: completion, command, target point, route ahead.

    The projection only moves forward within a window of points, as the leaderboard's
    ``RouteCompletionTest``, so a route crossing itself does not jump.
    """

    def __init__(self, route: DenseRoute, window: int = 50):
        self.route = route
        self.window = window
        self.index = 0

    def update(self, x: float, y: float) -> int:
        hi = min(self.index + self.window, len(self.route.points))
        d = np.linalg.norm(self.route.points[self.index:hi, :2] - np.array([x, y]), axis=1)
        self.index += int(np.argmin(d))
        return self.index

    def distance_to_route(self, x: float, y: float) -> float:
        """Distance to the nearest route point anywhere (InRouteTest)."""
        return float(np.min(np.linalg.norm(self.route.points[:, :2] - np.array([x, y]), axis=1)))

    def completion(self, x: float, y: float) -> float:
        """Route completion in percent (100 once > 99 % and within 10 m of the end)."""
        percent = 100.0 * self.route.cumulative[self.index] / max(self.route.length, 1e-6)
        near_end = np.linalg.norm(self.route.points[-1, :2] - np.array([x, y])) < COMPLETION_DONE_DIST
        return 100.0 if percent > COMPLETION_DONE_PERCENT and near_end else round(percent, 2)

    def road_option(self, lookahead: float = COMMAND_LOOKAHEAD) -> int:
        """The first non-lane-follow RoadOption within ``lookahead`` m ahead, else LANEFOLLOW."""
        ahead = self.route.cumulative <= self.route.cumulative[self.index] + lookahead
        for option in self.route.options[self.index:][ahead[self.index:]]:
            if option not in (ROAD_OPTION["LANEFOLLOW"], ROAD_OPTION["VOID"]):
                return int(option)
        return ROAD_OPTION["LANEFOLLOW"]

    def _point_at(self, distance: float) -> np.ndarray:
        d = np.clip(distance, 0.0, self.route.length)
        return np.stack([np.interp(d, self.route.cumulative, self.route.points[:, k]) for k in range(2)], axis=-1)

    @functools.cached_property
    def node_distances(self) -> np.ndarray:
        """Arc lengths of the navigation target points: every KEY_POINT_SPACING m, every command change, the end
        (the embedded simulator's rule, so both backends hand the policy the same kind of targets)."""
        cumulative, options = self.route.cumulative, np.asarray(self.route.options)
        changes = cumulative[np.nonzero(np.diff(options) != 0)[0] + 1]
        return np.unique(np.concatenate([np.arange(KEY_POINT_SPACING, self.route.length, KEY_POINT_SPACING),
                                         changes, [self.route.length]]))

    def nodes_ahead(self, count: int = ROUTE_NODES) -> np.ndarray:
        """World (<= count, 2) target points more than TARGET_MIN_DISTANCE m past the ego's projection."""
        ahead = self.node_distances[self.node_distances > self.route.cumulative[self.index] + TARGET_MIN_DISTANCE]
        if len(ahead) == 0:
            ahead = self.node_distances[-1:]
        return self._point_at(ahead[:count])

    def target_point(self) -> np.ndarray:
        """World (x, y) of the next navigation target point."""
        return self.nodes_ahead(1)[0]


# ================================================================================ criteria
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
            if (other_id == last_id and time_s - last_t < COLLISION_DEDUP_TIME) or \
                    np.linalg.norm(loc - last_loc) < COLLISION_DEDUP_DIST:
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
        """Leaderboard 2.0 / Bench2Drive multiplicative penalty (BENCH2DRIVE.md §3.2)."""
        return score_penalty(self.events, self.outside_percent)


def build_route_record(route: RouteSpec, criteria: Criteria, completion: float, status: str | None,
                       route_length: float, duration_game: float, duration_system: float, weather_id: str | None,
                       save_name: str = "", repetition: int = 0) -> dict:
    """The leaderboard ``RouteRecord`` (BENCH2DRIVE.md §4.1) from the criteria state, via ``sim.records``.

    ``status``: a terminating ``"Failed - <reason>"`` or None (Completed/Perfect/Failed from the scores).
    """
    failure = status.split(" - ", 1)[1] if status and " - " in status else None
    return route_record(index=route.index, route_id=route.route_id(repetition), scenario_name=route.scenario_name,
                        weather_id=weather_id, town=route.town, infractions=criteria.events,
                        route_completion=completion, outside_lanes_percentage=criteria.outside_percent,
                        failure=failure, route_length=route_length, duration_game=duration_game,
                        duration_system=duration_system, save_name=save_name or None)


# ================================================================================ observations
def bgra_to_rgb(raw: bytes | np.ndarray, width: int, height: int) -> np.ndarray:
    """A ``carla.Image.raw_data`` buffer (BGRA) -> (H, W, 3) uint8 RGB."""
    bgra = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(bgra[:, :, 2::-1])


def ego_state_vector(speed: float, accel_ego: Sequence[float], yaw_rate: float, control: Sequence[float],
                     speed_limit: float) -> np.ndarray:
    """The ``EGO_STATE_FIELDS`` vector: speed m/s, ego-frame acceleration, yaw rate rad/s, last control, limit m/s."""
    steer, throttle, brake = control
    values = dict(speed=speed, acc_x=accel_ego[0], acc_y=accel_ego[1], yaw_rate=yaw_rate, steer=steer,
                  throttle=throttle, brake=brake, speed_limit=speed_limit)
    return np.array([values[name] for name in EGO_STATE_FIELDS], dtype=np.float32)


def build_observation(tracker: RouteTracker, x: float, y: float, yaw: float, ego_state: np.ndarray,
                      timestamp: float, images: dict[str, np.ndarray] | None = None) -> dict:
    """The DriveEnv observation from the ego pose, the route and (optionally) RGB images by camera name."""
    road_option = tracker.road_option()
    obs = {
        "ego_state": ego_state.astype(np.float32),
        "command": path_index_from_road_option(road_option),
        "road_option": road_option,
        "target_point": to_ego_frame(tracker.target_point()[None], x, y, yaw)[0].astype(np.float32),
        "route": navigation_route(to_ego_frame(tracker.nodes_ahead(), x, y, yaw), NUM_ROUTE_POINTS,
                                  ROUTE_POINT_SPACING).astype(np.float32),
        "timestamp": float(timestamp),
    }
    if images is not None:
        from minddrive.sim.sensors import camera_calibration

        stacked = np.stack([images[name] for name in CAMERA_NAMES])
        obs["images"] = stacked
        obs.update(camera_calibration(width=stacked.shape[2], height=stacked.shape[1]))
    return obs


def camera_blueprint_attributes(width: int, height: int, fov: float) -> dict[str, str]:
    return {"image_size_x": str(width), "image_size_y": str(height), "fov": str(fov)}


# ================================================================================ the env
def import_carla() -> Any:
    """``import carla`` with a one-line error when the client library is missing."""
    try:
        import carla  # noqa: F401  (optional extra)
    except ImportError:
        raise UserError("CarlaDriveEnv: the 'carla' Python package is not installed; "
                        "pip install 'minddrive[carla]' (or add CARLA 0.9.15's egg to PYTHONPATH)") from None
    return carla


def connect(host: str, port: int, timeout: float) -> tuple[Any, Any]:
    """``(client, world)`` or a one-line UserError naming the address when no server answers."""
    carla = import_carla()
    try:
        client = carla.Client(host, int(port))
        client.set_timeout(float(timeout))
        world = client.get_world()
    except RuntimeError as exc:
        raise UserError(f"CarlaDriveEnv: no CARLA server answered at {host}:{port} within {timeout:g} s "
                        f"({str(exc).splitlines()[0]})") from None
    return client, world


def carla_tracer(world_map: Any, hop: float = 1.0) -> Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, int]]]:
    """``GlobalRoutePlanner(map, hop).trace_route`` as a tracer for :func:`densify_route`."""
    carla = import_carla()
    try:
        from agents.navigation.global_route_planner import GlobalRoutePlanner
    except ImportError:
        raise UserError("CarlaDriveEnv: CARLA's 'agents' package is not importable; add "
                        "$CARLA_ROOT/PythonAPI/carla to PYTHONPATH") from None
    planner = GlobalRoutePlanner(world_map, hop)

    def trace(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, int]]:
        hops = planner.trace_route(carla.Location(*map(float, a)), carla.Location(*map(float, b)))
        return [(np.array([w.transform.location.x, w.transform.location.y, w.transform.location.z]), int(o.value))
                for w, o in hops]

    return trace


@ENVS.register_module()
class CarlaDriveEnv(DriveEnv):
    """DriveEnv on a CARLA server: synchronous mode, fixed ``dt``, leaderboard route and criteria."""

    def __init__(self, host: str = "localhost", port: int = 2000, tm_port: int = 8000, dt: float = 0.05,
                 timeout: float = 60.0, routes: str | None = None, render: bool = True,
                 image_size: tuple[int, int] = B2D_IMAGE_SIZE, launch_command: str | None = None,
                 launch_wait: float = 30.0, tick_limit: int = TICK_LIMIT, tm_seed: int = 0, hop_resolution: float = 1.0):
        self.host, self.port, self.tm_port, self.dt = host, int(port), int(tm_port), float(dt)
        self.timeout, self.render, self.image_size = float(timeout), bool(render), tuple(image_size)
        self.launch_command, self.launch_wait = launch_command, float(launch_wait)
        self.tick_limit, self.tm_seed, self.hop = int(tick_limit), int(tm_seed), float(hop_resolution)
        self.routes = None
        if routes is not None:
            from minddrive.sim.routes import parse_routes

            self.routes = {r.id: r for r in parse_routes(routes)}
        self._server: subprocess.Popen | None = None
        self._client = self._world = None
        self._actors: list[Any] = []
        self._images: dict[str, np.ndarray] = {}
        self._collisions: list[tuple[str, int, tuple[float, float, float]]] = []
        self._route: RouteSpec | None = None
        self._status: str | None = None

    # --- connection ------------------------------------------------------------------------------
    def _ensure_connected(self) -> None:
        if self._world is not None:
            return
        if self.launch_command and (self._server is None or self._server.poll() is not None):
            self._server = subprocess.Popen(shlex.split(self.launch_command.format(port=self.port)))
            time.sleep(self.launch_wait)
        self._client, self._world = connect(self.host, self.port, self.timeout)

    def _load(self, route: RouteSpec) -> None:
        carla = import_carla()
        if self._world.get_map().name.split("/")[-1] != route.town:
            self._world = self._client.load_world(route.town)
        settings = self._world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.dt
        self._world.apply_settings(settings)
        tm = self._client.get_trafficmanager(self.tm_port)
        tm.set_synchronous_mode(True)
        tm.set_random_device_seed(self.tm_seed)
        if route.weathers:
            w = route.weathers[0]
            self._world.set_weather(carla.WeatherParameters(**{k: v for k, v in w.items() if k != "route_percentage"}))
        self._dense = densify_route(route.waypoints, carla_tracer(self._world.get_map(), self.hop))

    def _spawn(self) -> None:
        carla = import_carla()
        library = self._world.get_blueprint_library()
        blueprint = library.find(EGO_BLUEPRINT)
        blueprint.set_attribute("role_name", "hero")
        start = self._dense.points[0]
        heading = self._dense.points[min(2, len(self._dense.points) - 1)] - start
        yaw = math.degrees(math.atan2(heading[1], heading[0]))
        transform = carla.Transform(carla.Location(float(start[0]), float(start[1]), float(start[2]) + 0.5),
                                    carla.Rotation(yaw=yaw))
        self._ego = self._world.spawn_actor(blueprint, transform)
        self._actors = [self._ego]
        collision = self._world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=self._ego)
        collision.listen(lambda e: self._collisions.append(
            (e.other_actor.type_id, e.other_actor.id, (e.transform.location.x, e.transform.location.y,
                                                       e.transform.location.z))))
        self._actors.append(collision)
        if self.render:
            width, height = self.image_size
            for name in CAMERA_NAMES:
                mount = CAMERA_RIG[name]
                bp = library.find("sensor.camera.rgb")
                for key, value in camera_blueprint_attributes(width, height, mount["fov"]).items():
                    bp.set_attribute(key, value)
                cam = self._world.spawn_actor(bp, carla.Transform(carla.Location(mount["x"], mount["y"], mount["z"]),
                                                                  carla.Rotation(yaw=mount["yaw"])), attach_to=self._ego)
                cam.listen(lambda image, name=name: self._images.__setitem__(
                    name, bgra_to_rgb(image.raw_data, image.width, image.height)))
                self._actors.append(cam)

    def _destroy_actors(self) -> None:
        for actor in reversed(self._actors):
            try:
                if hasattr(actor, "stop"):
                    actor.stop()
                actor.destroy()
            except RuntimeError:
                pass
        self._actors = []

    # --- DriveEnv ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        options = options or {}
        route = options.get("route")
        if route is None and self.routes is not None and "route_id" in options:
            route = self.routes[str(options["route_id"])]
        if not isinstance(route, RouteSpec):
            raise UserError("CarlaDriveEnv.reset: options must carry 'route' (a RouteSpec) or 'route_id' "
                            "of the configured routes file")
        self._ensure_connected()
        if self._actors:
            self._destroy_actors()
        self._route, self._status = route, None
        self._load(route)
        self._spawn()
        self._tracker = RouteTracker(self._dense)
        self._criteria = Criteria(self.dt)
        self._ticks, self._control = 0, (0.0, 0.0, 0.0)
        self._wall_start = time.time()
        self._completion = 0.0
        self._last_xy = None
        self._world.tick()
        return self._observe(), self._info([])

    def step(self, control: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        carla = import_carla()
        steer, throttle, brake = validate_control(control)
        self._control = (float(steer), float(throttle), float(brake))
        fired: list = []
        try:
            self._ego.apply_control(carla.VehicleControl(throttle=float(throttle), steer=float(steer), brake=float(brake)))
            self._world.tick()
        except RuntimeError as exc:
            # The server stopped answering: the route fails as the leaderboard's crash path, and the
            # next reset reconnects (restarting the server when launch_command is set).
            self._status, self._world = CRASH_STATUS, None
            self._crash_reason = str(exc).splitlines()[0] if str(exc) else "timeout"
            return self._last_obs, 0.0, True, False, self._info(fired)
        self._ticks += 1
        before = self._completion
        obs = self._observe(fired)
        terminated = self._completion >= 100.0 or self._criteria.failure is not None
        truncated = False
        if self._criteria.failure is not None:
            self._status = self._criteria.failure
        elif self._ticks >= self.tick_limit and not terminated:
            self._status, truncated = "Failed - TickRuntime", True
        return obs, self._completion - before, terminated, truncated, self._info(fired)

    def route_record(self) -> dict:
        route = self._route
        self._criteria.finalize()
        status = self._status if self._status and self._status.startswith("Failed - ") else None
        return build_route_record(route, self._criteria, self._completion, status, self._dense.length,
                                  self._ticks * self.dt, time.time() - self._wall_start, weather_id=None)

    def close(self) -> None:
        if self._world is not None:
            self._destroy_actors()
            settings = self._world.get_settings()
            settings.synchronous_mode = False
            self._world.apply_settings(settings)
        if self._server is not None and self._server.poll() is None:
            self._server.terminate()
        self._world = None

    # --- one tick of bookkeeping ----------------------------------------------------------------------
    def _observe(self, fired: list | None = None) -> dict:
        fired = [] if fired is None else fired
        t = self._ticks * self.dt
        transform = self._ego.get_transform()
        x, y, z = transform.location.x, transform.location.y, transform.location.z
        yaw = math.radians(transform.rotation.yaw)
        velocity, accel = self._ego.get_velocity(), self._ego.get_acceleration()
        speed = math.hypot(velocity.x, velocity.y)
        self._tracker.update(x, y)
        self._completion = self._tracker.completion(x, y)
        step_m = 0.0 if self._last_xy is None else math.hypot(x - self._last_xy[0], y - self._last_xy[1])
        self._last_xy = (x, y)
        for other_type, other_id, location in self._collisions:
            self._criteria.collision(t, other_type, other_id, location, fired)
        self._collisions.clear()
        light = self._ego.get_traffic_light()
        if light is not None:
            is_red = self._ego.get_traffic_light_state() == import_carla().TrafficLightState.Red
            self._criteria.red_light(light.id, is_red, self._ego.is_at_traffic_light(), speed, (x, y, z), fired)
        waypoint = self._world.get_map().get_waypoint(transform.location, project_to_road=False)
        self._criteria.progress(speed, self._tracker.distance_to_route(x, y), waypoint is None, step_m, (x, y, z), fired)
        accel_ego = to_ego_frame(np.array([[accel.x + x, accel.y + y]]), x, y, yaw)[0]
        yaw_rate = math.radians(self._ego.get_angular_velocity().z)   # CARLA gives deg/s
        ego_state = ego_state_vector(speed, accel_ego, yaw_rate, self._control, self._ego.get_speed_limit() / 3.6)
        images = dict(self._images) if self.render and len(self._images) == len(CAMERA_NAMES) else None
        self._last_obs = build_observation(self._tracker, x, y, yaw, ego_state, t, images)
        return self._last_obs

    def _info(self, fired: list) -> dict:
        return {"events": fired, "route_completion": self._completion, "score_penalty": self._criteria.penalty(),
                "status": self._status or ("Completed" if self._completion >= 100.0 else "Started"),
                "scenario_type": self._route.scenario_type, "done_reason": self._status}


__all__ = ["CarlaDriveEnv", "DenseRoute", "RouteTracker", "Criteria", "densify_route", "straight_tracer",
           "to_ego_frame", "collision_key", "build_route_record", "bgra_to_rgb", "ego_state_vector",
           "build_observation", "connect", "import_carla", "carla_tracer", "CRASH_STATUS"]
