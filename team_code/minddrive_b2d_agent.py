"""Bench2Drive leaderboard agent for MindDrive (``--agent=team_code/minddrive_b2d_agent.py``).

``--agent-config`` is ``CONFIG+CKPT_DIR`` (Bench2Drive appends ``+<save_name>`` per route,
docs/bench2drive.md#one-evaluation-process; the last ``+`` field is then the save folder under ``$SAVE_PATH``).

Per tick (20 Hz): camera images are re-encoded as JPEG quality 20 (as the training data and the
Zoo agents, to avoid a train/test gap), resized to the model input, and turned into the same
observation the embedded simulator produces (:func:`minddrive.sim.carla.observation.build_observation`).
Every ``decision_interval`` ticks the policy plans; between plans the last plan is held (kept
in the world frame and re-expressed in the current ego frame) and the PID controller follows it.

Inputs as in training: the pose is the vehicle centre (the GNSS sits 1.4 m behind it; the reading is
moved forward along the compass heading), the speed limit is the hero's current one, and the route is
the leaderboard's own 1 m interpolation (Bench2Drive's base class keeps it as ``_plan_gps_HACK``; the
thinned ``_global_plan`` is densified instead when it is absent). Each tick's metric info (the base
class's ``get_metric_info``) goes to ``$SAVE_PATH/<save_name>/metric_info.json`` for Bench2Drive's
efficiency/smoothness tool.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from leaderboard.autoagents.autonomous_agent import AutonomousAgent, Track

from minddrive.constants import B2D_IMAGE_SIZE, CAMERA_NAMES, CAMERA_RIG, WAYPOINT_DT
from minddrive.sim.metric_info import write_metric_info

EARTH_RADIUS = 6378137.0
JPEG_QUALITY = 20
IMU_GNSS_MOUNT = dict(x=-1.4, y=0.0, z=0.0, roll=0.0, pitch=0.0, yaw=0.0)
METRIC_INFO_EVERY = 10          # ticks between rewrites of metric_info.json (and once more at destroy)


def get_entry_point() -> str:
    return "MindDriveAgent"


def bench2drive_sensors(width: int = B2D_IMAGE_SIZE[0], height: int = B2D_IMAGE_SIZE[1]) -> list[dict]:
    """The Bench2Drive rig (docs/bench2drive.md#camera-rig): six RGB cameras, IMU, GNSS, speedometer."""
    cameras = [dict(type="sensor.camera.rgb", x=m["x"], y=m["y"], z=m["z"], roll=0.0, pitch=0.0, yaw=m["yaw"],
                    width=width, height=height, fov=m["fov"], id=name)
               for name, m in ((n, CAMERA_RIG[n]) for n in CAMERA_NAMES)]
    return cameras + [
        dict(type="sensor.other.imu", **IMU_GNSS_MOUNT, sensor_tick=0.05, id="IMU"),
        dict(type="sensor.other.gnss", **IMU_GNSS_MOUNT, sensor_tick=0.01, id="GPS"),
        dict(type="sensor.speedometer", reading_frequency=20, id="SPEED"),
    ]


def parse_agent_config(path_to_conf_file: str) -> tuple[str, str, str | None]:
    """``CONFIG+CKPT[+save_name...]`` -> (config, checkpoint, save_name or None)."""
    parts = path_to_conf_file.split("+")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        from minddrive.errors import UserError

        raise UserError(f"--agent-config {path_to_conf_file!r}: expected 'CONFIG+CKPT_DIR' (optionally '+save_name')")
    return parts[0], parts[1], (parts[-1] if len(parts) > 2 else None)


class GnssProjection:
    """GNSS (lat, lon) -> CARLA world (x, y): the leaderboard's Mercator mapping, inverted.

    The map's reference latitude/longitude are not given to agents; they are recovered from the
    global plan, which comes both in GNSS and world coordinates (the first pair fixes the offset;
    the Mercator scale uses that pair's latitude -- off by < 0.2 % over a route, instead of the
    fsolve-based reference that misplaced Town12 in the Zoo agents).
    """

    def __init__(self, lat: float, lon: float, x: float, y: float):
        self.scale = math.cos(math.radians(lat))
        mx, my = self._mercator(lat, lon)
        self.origin = (mx - x, my + y)

    def _mercator(self, lat: float, lon: float) -> tuple[float, float]:
        mx = self.scale * math.radians(lon) * EARTH_RADIUS
        my = self.scale * EARTH_RADIUS * math.log(math.tan(math.radians(90.0 + lat) / 2.0))
        return mx, my

    def __call__(self, lat: float, lon: float) -> tuple[float, float]:
        mx, my = self._mercator(lat, lon)
        return mx - self.origin[0], -(my - self.origin[1])


def gnss_to_centre(x: float, y: float, yaw: float) -> tuple[float, float]:
    """World position of the vehicle centre from the GNSS mount's position and the heading (yaw rad)."""
    back = -IMU_GNSS_MOUNT["x"]
    return x + back * math.cos(yaw), y + back * math.sin(yaw)


def compass_to_yaw(compass: float) -> float:
    """IMU compass (rad, 0 = north = -y, clockwise) -> CARLA yaw (rad); NaN (a CARLA quirk) -> 0."""
    return 0.0 if not math.isfinite(compass) else compass - math.pi / 2


def jpeg_roundtrip_rgb(bgra: np.ndarray, size_hw: tuple[int, int] | None) -> np.ndarray:
    """CARLA BGRA image -> JPEG q20 -> RGB uint8, resized to ``size_hw`` (the model input)."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(bgra[:, :, :3]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if size_hw is not None and bgr.shape[:2] != tuple(size_hw):
        bgr = cv2.resize(bgr, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class MindDriveAgent(AutonomousAgent):
    """Leaderboard ``AutonomousAgent`` running a MindDrive checkpoint (see the module docstring)."""

    def setup(self, path_to_conf_file: str) -> None:
        self.track = Track.SENSORS
        config_path, ckpt, self.save_name = parse_agent_config(path_to_conf_file)
        from minddrive.config import load_config

        self.cfg = load_config(config_path)
        agent_cfg = dict(self.cfg.get("agent", {}))
        self.decision_interval = int(agent_cfg.get("decision_interval", 10))   # 20 Hz ticks -> 2 Hz plans
        self.tick_dt = float(agent_cfg.get("tick_dt", 0.05))
        self.image_size = tuple(agent_cfg.get("image_size", (256, 448)))        # (H, W) model input
        self.camera_size = tuple(agent_cfg.get("camera_size", B2D_IMAGE_SIZE))  # (W, H) requested from CARLA
        self.policy = self.load_policy(ckpt)
        self.controller = self.build_controller()
        self.save_path = (os.path.join(os.environ["SAVE_PATH"], self.save_name)
                          if os.environ.get("SAVE_PATH") and self.save_name else None)
        if self.save_path is not None:
            os.makedirs(self.save_path, exist_ok=True)
        self.metric_info: dict[int, dict] = {}
        self.step, self.plan_world, self.plan_tick = -1, None, 0
        self.tracker = self.projection = None
        self.last_control = (0.0, 0.0, 0.0)

    # --- hooks a subclass (or a test) may replace -----------------------------------------------------
    def load_policy(self, ckpt: str) -> Any:
        """The checkpoint as a ``MindDrivePolicy`` (``act`` / ``preprocess``); ``agent.policy`` in the config
        sets how it runs (dtype, fuse_decision_value: see ``MindDrivePolicy``; cuda_graphs, compile,
        merge_adapters, vit_float8: see ``minddrive.models.acceleration.accelerate_for_inference``)."""
        import torch

        from minddrive.models.acceleration import accelerate_for_inference
        from minddrive.models.policy import MindDrivePolicy, policy_options

        runtime = dict(dict(self.cfg.get("agent", {})).get("policy") or {})
        policy = MindDrivePolicy.from_checkpoint(ckpt, device="cuda" if torch.cuda.is_available() else "cpu",
                                                 **policy_options(runtime))
        return accelerate_for_inference(policy, runtime).eval()

    def build_controller(self) -> Any:
        from minddrive.sim.controller import PIDController

        return PIDController(**dict(self.cfg.get("controller", {})))

    # --- leaderboard API ---------------------------------------------------------------------------
    def sensors(self) -> list[dict]:
        return bench2drive_sensors(*self.camera_size)

    def _init_route(self) -> None:
        from minddrive.sim.carla.route import DenseRoute, RouteTracker, densify_thinned_plan

        plan_world = self._global_plan_world_coord
        points = np.array([[t.location.x, t.location.y, t.location.z] for t, _ in plan_world])
        options = np.array([int(getattr(o, "value", o)) for _, o in plan_world])
        gps, _ = self._global_plan[0]
        self.projection = GnssProjection(gps["lat"], gps["lon"], points[0, 0], points[0, 1])
        full_gps = getattr(self, "_plan_gps_HACK", None)
        if full_gps:
            dense = np.array([[*self.projection(g["lat"], g["lon"]), g["z"]] for g, _ in full_gps])
            route = DenseRoute(dense, np.array([int(getattr(o, "value", o)) for _, o in full_gps]))
        else:
            route = densify_thinned_plan(points, options)
        self.tracker = RouteTracker(route)

    def speed_limit(self) -> float:
        """The hero's current speed limit in m/s (CARLA reports km/h), as the embedded simulator's ego state."""
        hero = getattr(self, "hero_actor", None)
        return float(hero.get_speed_limit()) / 3.6 if hero is not None else 0.0

    def tick(self, input_data: dict) -> dict:
        """Sensor data -> the DriveEnv observation (plus the world pose used to hold plans)."""
        from minddrive.sim.carla.observation import build_observation, ego_state_vector
        from minddrive.sim.carla.route import to_ego_frame

        if self.tracker is None:
            self._init_route()
        lat, lon = input_data["GPS"][1][:2]
        imu = input_data["IMU"][1]
        yaw = compass_to_yaw(float(imu[-1]))
        x, y = gnss_to_centre(*self.projection(lat, lon), yaw)
        speed = float(input_data["SPEED"][1]["speed"])
        images = {name: jpeg_roundtrip_rgb(input_data[name][1], self.image_size) for name in CAMERA_NAMES}
        self.tracker.update(x, y)
        accel = (float(imu[0]), float(imu[1]))            # the IMU is mounted yaw 0: already ego axes
        ego_state = ego_state_vector(speed, accel, float(imu[5]), self.last_control, speed_limit=self.speed_limit())
        obs = build_observation(self.tracker, x, y, yaw, ego_state, self.step * self.tick_dt, images)
        obs["pose"] = (x, y, yaw)
        obs["world_to_ego"] = lambda pts: to_ego_frame(pts, x, y, yaw)
        return obs

    def run_step(self, input_data: dict, timestamp: float):
        import carla

        self.step += 1
        obs = self.tick(input_data)
        if self.plan_world is None or self.step - self.plan_tick >= self.decision_interval:
            self.plan_world = self.decide(obs)
            self.plan_tick = self.step
        waypoints, path = self.held_plan(obs)
        steer, throttle, brake = (float(v) for v in self.controller(path, waypoints, float(obs["ego_state"][0])))
        self.last_control = (steer, throttle, brake)
        self.record_metric_info()
        return carla.VehicleControl(steer=steer, throttle=throttle, brake=brake)

    def record_metric_info(self) -> None:
        """The hero's metric info for this tick (keyed by tick), rewritten every METRIC_INFO_EVERY ticks."""
        if getattr(self, "hero_actor", None) is None:
            return
        self.metric_info[self.step] = self.get_metric_info()
        if self.step % METRIC_INFO_EVERY == 0:
            self.write_metric_info()

    def write_metric_info(self) -> None:
        if self.save_path is not None and self.metric_info:
            write_metric_info(self.save_path, self.metric_info)

    def decide(self, obs: dict) -> dict:
        """One policy call (argmax decision); the plan is stored in world coordinates."""
        import torch

        model_obs = {k: v for k, v in obs.items() if k not in ("pose", "world_to_ego")}
        with torch.inference_mode():
            out = self.policy.act(self.policy.preprocess([model_obs]), sample=False)
        x, y, yaw = obs["pose"]
        c, s = math.cos(yaw), math.sin(yaw)
        to_world = lambda p: np.asarray(p, np.float64) @ np.array([[c, s], [-s, c]]) + np.array([x, y])  # noqa: E731
        return dict(speed_waypoints=to_world(out.speed_waypoints[0].float().cpu().numpy()),
                    path=to_world(out.path[0].float().cpu().numpy()), decision=int(out.decision[0]))

    def held_plan(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        """The held plan in the current ego frame, its speed waypoints re-timed to start now."""
        waypoints = self.plan_world["speed_waypoints"]
        origin = np.array(self.plan_origin(obs))
        times = WAYPOINT_DT * np.arange(len(waypoints) + 1)
        padded = np.vstack([origin[None], waypoints])
        elapsed = (self.step - self.plan_tick) * self.tick_dt
        query = np.clip(elapsed + WAYPOINT_DT * np.arange(1, len(waypoints) + 1), 0.0, times[-1])
        retimed = np.stack([np.interp(query, times, padded[:, k]) for k in range(2)], axis=1)
        to_ego = obs["world_to_ego"]
        return to_ego(retimed), to_ego(self.plan_world["path"])

    def plan_origin(self, obs: dict) -> tuple[float, float]:
        if self.step == self.plan_tick:
            self._origin = obs["pose"][:2]
        return self._origin

    def destroy(self) -> None:
        self.write_metric_info()
        self.policy = None
        try:
            import torch

            torch.cuda.empty_cache()
        except ImportError:
            pass


__all__ = ["MindDriveAgent", "get_entry_point", "bench2drive_sensors", "parse_agent_config", "GnssProjection",
           "compass_to_yaw", "gnss_to_centre", "jpeg_roundtrip_rgb"]
