"""Expert-driven clips in the real Bench2Drive layout (docs/bench2drive.md#data-layout) plus Chat-B2D VQA.

One clip = one route driven by the privileged expert::

    <root>/<Scenario>_<Town>_Route<N>_Weather<W>/anno/{frame:05}.json.gz     gzip JSON (indent 4)
    <root>/<clip>/camera/rgb_{front,front_left,...}/{frame:05}.jpg           JPEG (quality 20 by default)
    <vqa_root>/<split>/<clip>/{frame:05}.json                                Chat-B2D turns (``frame_vqa``)

Frames are saved at 10 Hz. Everything a loader needs lives in the real keys: nothing extra is written.
Where the embedded world knows less than CARLA, the field is filled the way a loader reads it and the
difference is stated here: ``x, y`` are the ground-truth ego location (no GNSS noise or -1.4 m GNSS
offset), ``theta`` is the exact compass, heights, pitch and roll come from the town's terrain
(``minddrive.sim.terrain``: the driving itself is planar, what is recorded stands on the height field), walker ``speed`` is their real speed (CARLA writes 0), there
are no ``road_id/lane_id/section_id``, ``bone`` is empty and ``num_points`` is -1 (no LiDAR).
The VQA turns of a frame come from the caller's ``frame_vqa(scene, speed_index, path_index, seed, frame)``
(``minddrive.data.sim_vqa.frame_vqa``: what the turns say is the data layer's business, not the simulator's).
A clip is written into a hidden temporary folder and renamed when complete, so re-running skips
finished clips and never sees half-written ones.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from minddrive.constants import ABILITIES, CAMERA_FOLDERS, CAMERA_NAMES, CAMERA_RIG, NUM_SPEED_ACTIONS
from minddrive.errors import UserError
from minddrive.sim.hdmap import map_name, write_hd_map
from minddrive.sim.scene import ACTOR_CLASS, ActorState, Scene
from minddrive.sim.sensors import B2D_IMAGE_SIZE_HW, camera_calibration, carla_matrix, render_cameras
from minddrive.sim.terrain import Terrain
from minddrive.utils.io import write_json

FRAME_RATE = 10.0
DEFAULT_JPEG_QUALITY = 20
SAVE_DISTANCE = 100.0            # Bench2Drive DIS_*_SAVE
GRAVITY = 9.81                   # a CARLA IMU accelerometer reads +g on z at rest
LIDAR_MOUNT = dict(x=-0.39, y=0.0, z=1.84)
SPLIT_FILE = "split.json"        # {"val": ["v1/<clip>", ...]} as bench2drive_base_train_val_split.json
MAPS_DIR = "maps"                # <out_root>/maps/<town>_seed<seed>_HD_map.npz, for prepare-data --map-root

# Approximations of CARLA weather presets (the 8 keys loaders match against weather.xml).
_WEATHER_PRESETS = (
    dict(cloudiness=5.0, precipitation=0.0, precipitation_deposits=0.0, wetness=0.0, wind_intensity=10.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=45.0, fog_density=2.0),
    dict(cloudiness=60.0, precipitation=0.0, precipitation_deposits=0.0, wetness=0.0, wind_intensity=10.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=45.0, fog_density=3.0),
    dict(cloudiness=5.0, precipitation=0.0, precipitation_deposits=50.0, wetness=0.0, wind_intensity=10.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=45.0, fog_density=3.0),
    dict(cloudiness=60.0, precipitation=60.0, precipitation_deposits=60.0, wetness=0.0, wind_intensity=60.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=45.0, fog_density=3.0),
    dict(cloudiness=100.0, precipitation=100.0, precipitation_deposits=90.0, wetness=0.0, wind_intensity=100.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=45.0, fog_density=7.0),
    dict(cloudiness=10.0, precipitation=0.0, precipitation_deposits=0.0, wetness=0.0, wind_intensity=5.0,
         sun_azimuth_angle=-1.0, sun_altitude_angle=15.0, fog_density=25.0),
)
_SEMANTIC_TAG = {"ego": 14, "vehicle": 14, "emergency": 14, "bicycle": 19, "walker": 12, "static": 14, "prop": 20}
_BASE_TYPE = {"ego": "car", "vehicle": "car", "emergency": "car", "bicycle": "bicycle", "static": "car"}


def weather_dict(weather_id: int) -> dict[str, float]:
    return dict(_WEATHER_PRESETS[int(weather_id) % len(_WEATHER_PRESETS)])


def clip_name(scene: Scene, route_number: int, town: str | None = None) -> str:
    """``<Scenario>_<town>_Route<N>_Weather<W>``; ``town`` (default the scene's) is the clip's map name."""
    scenario = scene.scenario_type or "NoScenario"
    return f"{scenario}_{town or scene.town}_Route{int(route_number)}_Weather{int(scene.weather_id)}"


# --- annotation ----------------------------------------------------------------------------------

_TERRAINS: dict[str, Terrain] = {}


def terrain(town: str) -> Terrain:
    if town not in _TERRAINS:
        _TERRAINS[town] = Terrain(town)
    return _TERRAINS[town]


def _pose(actor: ActorState, town: str) -> np.ndarray:
    return terrain(town).pose(actor.x, actor.y, actor.yaw, up=actor.z)


def _rotation(pose: np.ndarray) -> list[float]:
    """``[pitch, roll, yaw]`` in degrees of a pose matrix, the collector's order."""
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(pose[2, 0])))))
    roll = math.degrees(math.atan2(-pose[2, 1], pose[2, 2]))
    return [pitch, roll, math.degrees(math.atan2(pose[1, 0], pose[0, 0]))]


def _box_geometry(actor: ActorState, world2_key: str, town: str) -> dict[str, Any]:
    pose = _pose(actor, town)
    ext = np.asarray(actor.extent, dtype=np.float64)
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
    local = signs * ext + np.array([0.0, 0.0, ext[2]])            # bbx_loc = (0, 0, half height)
    world_cord = local @ pose[:3, :3].T + pose[:3, 3]
    center = pose[:3, :3] @ [0.0, 0.0, ext[2]] + pose[:3, 3]
    return {"location": pose[:3, 3].tolist(), "rotation": _rotation(pose),
            "bbx_loc": [0.0, 0.0, float(ext[2])], "center": center.tolist(),
            "extent": ext.tolist(), "world_cord": world_cord.tolist(), world2_key: np.linalg.inv(pose).tolist()}


def _paint(actor_id: int) -> str:
    from minddrive.sim.sensors import actor_color

    return ",".join(str(int(c)) for c in actor_color("vehicle", actor_id))


def actor_box(actor: ActorState, ego: ActorState, town: str = "") -> dict[str, Any]:
    """One ``bounding_boxes`` entry for an actor of the snapshot, on ``town``'s terrain.

    docs/bench2drive.md#bounding-boxes.
    """
    cls = ACTOR_CLASS.get(actor.kind, "vehicle")
    key = {"ego_vehicle": "world2ego", "vehicle": "world2vehicle", "walker": "world2ped"}.get(cls, "world2sign")
    box: dict[str, Any] = {"class": cls, "id": str(actor.id), "type_id": actor.type_id}
    box.update(_box_geometry(actor, key, town))
    box["semantic_tags"] = [_SEMANTIC_TAG.get(actor.kind, 14)]
    box["distance"] = float(math.hypot(actor.x - ego.x, actor.y - ego.y))
    if cls == "ego_vehicle":
        box.update(base_type="car", color=_paint(actor.id), speed=float(actor.speed), brake=float(actor.brake))
        box["semantic_tags"] = [box["semantic_tags"]]   # Bench2Drive wraps the ego's tags in an extra list
    elif cls == "vehicle":
        static = actor.kind == "static"
        box.update(state="static" if static else "dynamic", base_type=_BASE_TYPE.get(actor.kind, "car"),
                   color=_paint(actor.id), num_points=-1, speed=0.0 if static else float(actor.speed),
                   brake=1.0 if static else float(actor.brake), light_state="NONE" if static else actor.light_state)
    elif cls == "walker":
        box.update(gender="female" if actor.id % 2 else "male", age="adult", num_points=-1,
                   speed=float(actor.speed), bone=[])
    return box


def _guard_box(cls: str, guard, type_id: str, ego: ActorState, town: str = "") -> dict[str, Any]:
    """Traffic light / stop sign entry: pose, level-bbox geometry and the trigger volume on its stop line."""
    line = np.asarray(guard.stop_line, dtype=np.float64).reshape(2, 2)
    middle = line.mean(axis=0)
    along = line[1] - line[0]
    yaw = math.degrees(math.atan2(along[1], along[0]))
    ground = terrain(town)
    z, volume_z = ground.height(guard.x, guard.y), ground.height(*middle)
    box = {"class": cls, "id": str(guard.id), "type_id": type_id, "location": [guard.x, guard.y, z],
           "rotation": [0.0, 0.0, 0.0], "center": [guard.x, guard.y, z + 2.0], "extent": [0.3, 0.3, 2.0],
           "semantic_tags": [7 if cls == "traffic_light" else 8],
           "distance": float(math.hypot(guard.x - ego.x, guard.y - ego.y)),
           "affects_ego": bool(guard.affects_ego),
           "trigger_volume_location": [float(middle[0]), float(middle[1]), float(volume_z)],
           "trigger_volume_rotation": [0.0, 0.0, yaw % 360.0],
           "trigger_volume_extent": [float(np.hypot(*along) / 2), 1.0, 1.0]}
    if cls == "traffic_light":
        box["state"] = int(guard.state)
    else:
        box["world2sign"] = np.linalg.inv(carla_matrix(guard.x, guard.y, z)).tolist()
    return box


def _route_point_ahead(scene: Scene, metres: float) -> np.ndarray:
    route = np.asarray(scene.route, dtype=np.float64).reshape(-1, 2)
    if len(route) == 0:
        return np.asarray(scene.target_point, dtype=np.float64)
    rest = route[min(max(scene.route_progress_index, 0), len(route) - 1):]
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(rest, axis=0).T))])
    return rest[min(int(np.searchsorted(arc, metres)), len(rest) - 1)]


def _sensor_entries(ego_pose: np.ndarray, width: int, height: int) -> dict[str, Any]:
    calib = camera_calibration(width, height)
    sensors: dict[str, Any] = {}
    for i, name in enumerate(CAMERA_NAMES):
        cam2ego = calib["cam2ego"][i].astype(np.float64)
        cam2world = ego_pose @ cam2ego
        sensors[name] = {"location": cam2world[:3, 3].tolist(), "rotation": _rotation(cam2world),
                         "intrinsic": calib["cam_intrinsic"][i].astype(np.float64).tolist(),
                         "world2cam": np.linalg.inv(cam2world).tolist(), "cam2ego": cam2ego.tolist(),
                         "fov": CAMERA_RIG[name]["fov"], "image_size_x": int(width), "image_size_y": int(height)}
    lidar2ego = carla_matrix(**LIDAR_MOUNT)
    lidar2world = ego_pose @ lidar2ego
    sensors["LIDAR_TOP"] = {"location": lidar2world[:3, 3].tolist(), "rotation": _rotation(lidar2world),
                            "world2lidar": np.linalg.inv(lidar2world).tolist(), "lidar2ego": lidar2ego.tolist()}
    return sensors


def frame_annotation(scene: Scene, image_size: tuple[int, int] = B2D_IMAGE_SIZE_HW, should_brake: bool = False,
                     ) -> dict[str, Any]:
    """The ``anno/{frame}.json.gz`` content of ``scene`` with Bench2Drive's top-level keys.

    docs/bench2drive.md#annotation-frames.
    """
    ego = scene.ego
    height, width = image_size
    ego_pose = _pose(ego, scene.town)
    rot = ego_pose[:3, :3]
    near, far = _route_point_ahead(scene, 8.0), _route_point_ahead(scene, 30.0)
    target = np.asarray(scene.target_point, dtype=np.float64)
    steer, throttle, brake = (float(v) for v in scene.control)
    # An accelerometer reads the acceleration minus gravity, in the body axes (pitched on a slope).
    acceleration = rot.T @ (np.asarray(scene.acceleration, dtype=np.float64) + np.array([0.0, 0.0, GRAVITY]))
    angular_velocity = rot.T @ np.asarray(scene.angular_velocity, dtype=np.float64)

    boxes = [actor_box(ego, ego, scene.town)]
    for actor in scene.actors:
        if math.hypot(actor.x - ego.x, actor.y - ego.y) <= SAVE_DISTANCE:
            boxes.append(actor_box(actor, ego, scene.town))
    for light in scene.traffic_lights:
        if math.hypot(light.x - ego.x, light.y - ego.y) <= SAVE_DISTANCE:
            boxes.append(_guard_box("traffic_light", light, "traffic.traffic_light", ego, scene.town))
    for sign in scene.stop_signs:
        if math.hypot(sign.x - ego.x, sign.y - ego.y) <= SAVE_DISTANCE:
            boxes.append(_guard_box("traffic_sign", sign, "traffic.stop", ego, scene.town))
    option = int(scene.road_option)
    return {
        "x": float(ego.x), "y": float(ego.y),
        "theta": float((ego.yaw + math.pi / 2) % (2 * math.pi)),   # compass: 0 = north (-y), clockwise
        "speed": float(ego.speed),
        "throttle": throttle, "steer": steer, "brake": brake, "reverse": False,
        "x_command_near": float(near[0]), "y_command_near": float(near[1]), "command_near": option,
        "x_command_far": float(far[0]), "y_command_far": float(far[1]), "command_far": option,
        "x_target": float(target[0]), "y_target": float(target[1]), "next_command": option,
        "should_brake": int(bool(should_brake)), "only_ap_brake": 0,
        "weather": weather_dict(scene.weather_id),
        "acceleration": acceleration.tolist(), "angular_velocity": angular_velocity.tolist(),
        "bounding_boxes": boxes,
        "sensors": _sensor_entries(ego_pose, width, height),
    }


def write_frame(clip_dir: Path, frame: int, annotation: dict, images: np.ndarray, jpeg_quality: int) -> None:
    """Write one frame: gzip JSON annotation and six JPEGs (RGB input, stored BGR as cv2 writes CARLA's)."""
    with gzip.GzipFile(clip_dir / "anno" / f"{frame:05d}.json.gz", "wb", mtime=0) as handle:
        handle.write(json.dumps(annotation, indent=4).encode())
    for folder, image in zip(CAMERA_FOLDERS, images):
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {clip_dir}/camera/{folder}/{frame:05d}.jpg")
        (clip_dir / "camera" / folder / f"{frame:05d}.jpg").write_bytes(data.tobytes())


# --- driving a clip -------------------------------------------------------------------------------

def meta_action_indices(meta: Any, scene: Scene) -> tuple[int, int]:
    """(speed, path) meta-action indices from the expert's ``last_meta_action`` in any of its forms:
    a ``(speed, path)`` pair, a speed index alone (path from navigation), or an object/dict with
    ``speed``/``path`` fields."""
    if meta is None:
        return 0, int(scene.command)
    if isinstance(meta, dict):
        return int(meta.get("speed", 0)), int(meta.get("path", scene.command))
    if hasattr(meta, "speed") and not isinstance(meta, (int, np.integer)):
        return int(meta.speed), int(getattr(meta, "path", scene.command))
    if isinstance(meta, (tuple, list, np.ndarray)) and len(meta) == 2:
        return int(meta[0]), int(meta[1])
    return int(meta), int(scene.command)


def _existing_clip(out_root: Path, route_number: int) -> Path | None:
    found = sorted(p for p in out_root.glob(f"*_Route{int(route_number)}_Weather*") if p.is_dir())
    return found[0] if found else None


def write_clip(env, expert, out_root: str | os.PathLike, seed: int, scenario: str | None = None, route=None,
               route_number: int | None = None, image_size: tuple[int, int] = B2D_IMAGE_SIZE_HW,
               jpeg_quality: int = DEFAULT_JPEG_QUALITY, vqa_root: str | os.PathLike | None = None,
               split: str = "train", max_frames: int | None = None,
               frame_vqa: Callable[[Scene, int, int, int, int], list] | None = None,
               map_root: str | os.PathLike | None = None) -> Path:
    """Drive one route with ``expert`` and write one Bench2Drive clip (and its VQA); returns the clip folder.

    With ``vqa_root``, ``frame_vqa(scene, speed_index, path_index, seed, frame)`` gives each frame's VQA turns.
    The clip's town field is the name of the road network it drives (``<town>_seed<seed>``,
    :func:`minddrive.sim.hdmap.map_name`); with ``map_root``, that network's HD map is written there as
    ``<name>_HD_map.npz`` in ``tools/gen_hdmap.py``'s format, before the clip is complete.

    ``route_number`` (default ``seed``) names the clip ``..._Route<N>_...`` and must be unique in
    ``out_root``; a clip already there is kept as it is (re-runs resume).
    """
    if vqa_root is not None and frame_vqa is None:
        raise ValueError("write_clip: vqa_root given without frame_vqa")
    out_root = Path(out_root)
    route_number = int(seed if route_number is None else route_number)
    done = _existing_clip(out_root, route_number)
    if done is not None:
        return done
    options = {}
    if route is not None:
        options["route"] = route
    if scenario is not None:
        options["scenario"] = scenario
    env.reset(seed=int(seed), options=options or None)
    scene = env.snapshot()
    world = getattr(env, "world", None)
    network_name = map_name(scene.town, seed) if world is not None else None
    name = clip_name(scene, route_number, network_name)
    tmp_clip = out_root / f".{name}.partial"
    tmp_vqa = Path(vqa_root) / split / f".{name}.partial" if vqa_root is not None else None
    for tmp in (tmp_clip, tmp_vqa):
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
    (tmp_clip / "anno").mkdir()
    for folder in CAMERA_FOLDERS:
        (tmp_clip / "camera" / folder).mkdir(parents=True)

    stride = max(1, int(round(1.0 / (FRAME_RATE * float(getattr(env, "dt", 0.1))))))
    frame, tick, finished = 0, 0, False
    while not finished and (max_frames is None or frame < max_frames):
        control = np.asarray(expert.act(), dtype=np.float64)
        if tick % stride == 0:
            speed_index, path_index = meta_action_indices(getattr(expert, "last_meta_action", None), scene)
            speed_index = min(max(speed_index, 0), NUM_SPEED_ACTIONS - 1)
            # The control the expert chose for this frame is the frame's label (as Bench2Drive's get_control).
            scene.control = (float(control[0]), float(control[1]), float(control[2]))
            annotation = frame_annotation(scene, image_size, should_brake=control[2] > 0.5)
            images = render_cameras(scene, image_size[1], image_size[0])
            write_frame(tmp_clip, frame, annotation, images, jpeg_quality)
            if tmp_vqa is not None:
                write_json(tmp_vqa / f"{frame:05d}.json", frame_vqa(scene, speed_index, path_index, seed, frame),
                           indent=None)
            frame += 1
        _, _, terminated, truncated, _ = env.step(control)
        finished = bool(terminated or truncated)
        scene = env.snapshot()
        tick += 1
    if frame == 0:
        raise UserError(f"route seed {seed}: the episode ended before a frame was written")
    if tmp_vqa is not None:
        final_vqa = tmp_vqa.parent / name
        shutil.rmtree(final_vqa, ignore_errors=True)
        os.replace(tmp_vqa, final_vqa)
    if map_root is not None and world is not None:
        write_hd_map(map_root, network_name, world, terrain(scene.town))
    final = out_root / name
    os.replace(tmp_clip, final)   # last: a clip folder only exists once complete (its VQA too)
    return final


# --- many clips -----------------------------------------------------------------------------------

def default_scenarios() -> tuple[str, ...]:
    """Scenario types to spread clips over: the simulator's own list when it publishes one."""
    try:
        from minddrive.sim import scenarios as sim_scenarios

        for attr in ("SCENARIO_TYPES", "SUPPORTED_SCENARIOS", "SCENARIOS"):
            names = getattr(sim_scenarios, attr, None)
            if names:
                return tuple(sorted(names))
    except ImportError:
        pass
    return tuple(sorted({name for names in ABILITIES.values() for name in names}))


def make_env_and_expert(env_cfg: dict | None = None):
    from minddrive.registry import ENVS, build
    from minddrive.sim.expert import Expert

    env = build(dict(env_cfg or dict(type="EmbeddedDriveEnv")), ENVS, where="env")
    return env, Expert(env)


def _write_job(job: dict) -> str:
    env, expert = make_env_and_expert(job.pop("env_cfg"))
    try:
        return str(write_clip(env, expert, **job))
    finally:
        env.close()


def write_dataset(out_root: str | os.PathLike, num_routes: int, seed: int = 0, vqa_root: str | os.PathLike | None = None,
                  workers: int = 1, image_size: tuple[int, int] = B2D_IMAGE_SIZE_HW,
                  jpeg_quality: int = DEFAULT_JPEG_QUALITY, val_fraction: float = 0.1,
                  scenarios: tuple[str, ...] | None = None, env_cfg: dict | None = None,
                  max_frames: int | None = None,
                  frame_vqa: Callable[[Scene, int, int, int, int], list] | None = None) -> list[Path]:
    """Write ``num_routes`` clips under ``<out_root>/v1/`` spread over scenario types, plus ``split.json``, and
    the HD map of each clip's road network under ``<out_root>/maps/`` (``prepare-data --map-root``).

    Route ``i`` uses episode seed ``seed * 100_000 + i`` (also its route number, so names are unique
    and a re-run with the same arguments skips finished clips). A ``val_fraction`` of the routes,
    picked by ``seed``, is the validation split (their VQA goes to ``<vqa_root>/val``). ``frame_vqa``: as
    :func:`write_clip` (a module-level function, so that worker processes can receive it).
    """
    from tqdm import tqdm

    if num_routes < 1:
        raise UserError(f"--routes: expected a positive number of routes, got {num_routes}")
    scenarios = tuple(scenarios or default_scenarios())
    clips_root = Path(out_root) / "v1"
    clips_root.mkdir(parents=True, exist_ok=True)
    num_val = int(round(num_routes * val_fraction)) if num_routes > 1 else 0
    val = set(np.random.default_rng(seed).choice(num_routes, size=max(num_val, 1 if num_routes > 1 else 0),
                                                 replace=False).tolist())
    jobs = [dict(env_cfg=env_cfg, out_root=clips_root, seed=seed * 100_000 + i, scenario=scenarios[i % len(scenarios)],
                 image_size=tuple(image_size), jpeg_quality=jpeg_quality, vqa_root=vqa_root,
                 split="val" if i in val else "train", max_frames=max_frames, frame_vqa=frame_vqa,
                 map_root=Path(out_root) / MAPS_DIR)
            for i in range(num_routes)]
    results: dict[int, str] = {}
    with tqdm(total=num_routes, desc="sim-data clips", unit="clip") as bar:
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = _write_job(dict(job))
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_write_job, dict(job)): i for i, job in enumerate(jobs)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(1)
    clips = [Path(results[i]) for i in range(num_routes)]
    write_json(Path(out_root) / SPLIT_FILE, {"val": [f"v1/{clips[i].name}" for i in sorted(val)]})
    return clips


__all__ = ["write_clip", "write_dataset", "frame_annotation", "actor_box", "clip_name", "weather_dict",
           "meta_action_indices", "FRAME_RATE", "DEFAULT_JPEG_QUALITY", "SPLIT_FILE", "MAPS_DIR"]
