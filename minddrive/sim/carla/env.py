"""CarlaDriveEnv: the CARLA client side of the backend (the ``carla`` module is imported lazily).

A server that stops answering (tick timeout) ends the episode with status
``Failed - Simulation crashed``; the next ``reset`` reconnects, restarting the server first
when ``launch_command`` is configured.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import time
from typing import Any, Callable

import numpy as np

from minddrive.constants import B2D_IMAGE_SIZE, CAMERA_NAMES, CAMERA_RIG
from minddrive.errors import UserError
from minddrive.registry import ENVS
from minddrive.sim.base import DriveEnv, validate_control
from minddrive.sim.carla.criteria import Criteria, build_route_record
from minddrive.sim.carla.observation import bgra_to_rgb, build_observation, camera_blueprint_attributes, ego_state_vector
from minddrive.sim.carla.route import RouteTracker, densify_route, to_ego_frame
from minddrive.sim.routes import RouteSpec

EGO_BLUEPRINT = "vehicle.lincoln.mkz_2020"
CRASH_STATUS = "Failed - Simulation crashed"
TICK_LIMIT = 4000                      # Bench2Drive v0.0.2+: 200 s of game time at 20 Hz


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


__all__ = ["CarlaDriveEnv", "CRASH_STATUS", "carla_tracer", "connect", "import_carla"]
