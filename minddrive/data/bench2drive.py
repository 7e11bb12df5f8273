"""Reading Bench2Drive clips: folder layout, per-frame annotations, poses and camera calibration.

Layout and keys follow docs/bench2drive.md#data-layout (the published ``docs/anno.md`` and ``tools/data_collect.py``):
``<clip>/anno/{frame:05}.json.gz`` and ``<clip>/camera/rgb_<cam>/{frame:05}.jpg``. Everything stays in
CARLA's left-handed frames (x forward, y right, z up, yaw clockwise seen from above); the ego frame is
the ego actor frame given by ``bounding_boxes[0].world2ego`` when present, else by the GNSS/compass
estimate (``x``, ``y``, ``theta``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minddrive.utils.geometry import carla_matrix as ue_matrix  # UE location + rotation -> 4x4

from minddrive.constants import B2D_IMAGE_SIZE, CAMERA_FOLDERS, CAMERA_NAMES, CAMERA_RIG

# The town field is a CARLA town (``Town12``, ``Town10HD``) or an embedded network (``EmbeddedTown03_seed7``).
CLIP_NAME = re.compile(r"^(?P<scenario>.+?)_(?P<town>(?:Embedded)?Town\w+?)_Route(?P<route>\d+)_Weathe?r?(?P<weather>\d*)$")
ANNO_DIR = "anno"
CAMERA_DIR = "camera"

# Standard optical axes (x right, y down, z forward) from UE camera axes (x forward, y right, z up).
UE_TO_OPTICAL = np.array([[0, 1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


class CorruptFrameError(Exception):
    """A frame that cannot be used: ``reason`` says why, ``path`` (when known) names the offending file."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        self.reason, self.path = reason, None if path is None else str(path)
        super().__init__(f"{path}: {reason}" if path is not None else reason)


@dataclass(frozen=True)
class ClipName:
    scenario: str
    town: str
    route: int
    weather: int | None


def parse_clip_name(name: str) -> ClipName:
    """``HardBreakRoute_Town01_Route30_Weather3`` -> its parts (the malformed Base name ``..._Weathe`` too)."""
    match = CLIP_NAME.match(Path(name).name)
    if match is None:
        # Unknown naming: keep the clip, take the town from the Zoo rule (second '_' field) where possible.
        parts = Path(name).name.split("_")
        return ClipName(parts[0], parts[1] if len(parts) > 1 else "", -1, None)
    weather = match["weather"]
    return ClipName(match["scenario"], match["town"], int(match["route"]), int(weather) if weather else None)


def find_clips(root: str | os.PathLike) -> list[str]:
    """Clip folders (those with an ``anno/`` folder) at depth 1 or 2 under ``root``, as sorted relative paths.

    Depth 2 covers the Zoo layout ``data/bench2drive/v1/<clip>``; depth 1 a flat folder of clips. Hidden
    folders (a writer's ``.<clip>.partial`` still being written) are not clips.
    """
    root = Path(root)
    found = []
    for depth_glob in ("*/" + ANNO_DIR, "*/*/" + ANNO_DIR):
        for anno in root.glob(depth_glob):
            relative = anno.parent.relative_to(root)
            if anno.is_dir() and not any(part.startswith(".") for part in relative.parts):
                found.append(relative.as_posix())
    return sorted(set(found))


def frame_ids(clip_dir: str | os.PathLike) -> list[int]:
    """Frame indices of a clip: the numeric stems of ``anno/*.json.gz``, sorted."""
    ids = []
    for path in Path(clip_dir, ANNO_DIR).glob("*.json.gz"):
        stem = path.name[: -len(".json.gz")]
        if stem.isdigit():
            ids.append(int(stem))
    return sorted(ids)


def anno_path(clip_dir: str | os.PathLike, frame: int) -> Path:
    return Path(clip_dir, ANNO_DIR, f"{frame:05d}.json.gz")


def image_path(clip_dir: str | os.PathLike, camera: str, frame: int) -> Path:
    return Path(clip_dir, CAMERA_DIR, CAMERA_FOLDERS[CAMERA_NAMES.index(camera)], f"{frame:05d}.jpg")


def read_annotation(path: str | os.PathLike) -> dict:
    """Parse one ``json.gz`` annotation; any damage raises :class:`CorruptFrameError` naming the file."""
    try:
        with gzip.open(path, "rt") as handle:
            anno = json.load(handle)
    except FileNotFoundError:
        raise CorruptFrameError("annotation missing", path) from None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFrameError(f"unreadable annotation ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(anno, dict) or not anno.get("bounding_boxes"):
        raise CorruptFrameError("annotation has no bounding_boxes (ego must be element 0)", path)
    return anno


def check_jpeg(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a usable JPEG (missing, empty, truncated), or None.

    Checks the SOI/EOI markers instead of decoding: a full decode of ~1.2 M Base images would dominate
    index building, while truncated downloads (the common damage) lose the end marker.
    """
    try:
        size = os.path.getsize(path)
        if size < 4:
            return "empty image"
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(-2, os.SEEK_END)
            tail = handle.read(2)
    except FileNotFoundError:
        return "image missing"
    except OSError as exc:
        return f"unreadable image ({exc})"
    if head != b"\xff\xd8":
        return "not a JPEG"
    if tail != b"\xff\xd9":
        return "truncated JPEG"
    return None


# ---------------------------------------------------------------------------------------------------
# Geometry (left-handed CARLA frames; the usual rotation formulas hold because both the axes and the
# yaw direction are mirrored).

def yaw_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """4x4 pose (local -> world) for a position and a yaw in radians."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, z], [0, 0, 0, 1]], dtype=np.float64)


def compass_to_yaw(theta: float | None) -> float:
    """IMU compass (0 = north = -y, clockwise) -> CARLA yaw in radians; NaN/None reads as facing north."""
    if theta is None or not math.isfinite(theta):
        theta = 0.0
    return theta - math.pi / 2


def ego_world2ego(anno: dict) -> np.ndarray:
    """World -> ego transform: the GT ``world2ego`` of the ego box, else built from GNSS x, y and compass.

    Raises :class:`CorruptFrameError` when no finite pose can be had (the caller names the file).
    """
    try:
        matrix = _ego_world2ego(anno)
    except (KeyError, TypeError, ValueError, IndexError, np.linalg.LinAlgError) as exc:
        raise CorruptFrameError(f"ego pose: no usable world2ego, location/rotation or x/y/theta ({exc})") from None
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise CorruptFrameError("ego pose: world2ego is not a finite 4x4 matrix")
    return matrix


def _ego_world2ego(anno: dict) -> np.ndarray:
    ego = anno["bounding_boxes"][0]
    if ego.get("world2ego") is not None:
        return np.asarray(ego["world2ego"], dtype=np.float64)
    if ego.get("location") is not None and ego.get("rotation") is not None:
        loc, rot = ego["location"], ego["rotation"]
        return np.linalg.inv(ue_matrix(loc[0], loc[1], loc[2], rot[0], rot[1], rot[2]))
    return np.linalg.inv(yaw_matrix(float(anno["x"]), float(anno["y"]), compass_to_yaw(anno.get("theta"))))


def ego_pose(anno: dict) -> np.ndarray:
    """``[x, y, yaw]`` of the ego in the world (metres, radians) from the same source as :func:`ego_world2ego`."""
    ego2world = np.linalg.inv(ego_world2ego(anno))
    return np.array([ego2world[0, 3], ego2world[1, 3], math.atan2(ego2world[1, 0], ego2world[0, 0])])


def to_ego(world2ego: np.ndarray, points: np.ndarray) -> np.ndarray:
    """World points -> ego-frame ``(N, 2)`` x, y through the full 4x4 ``world2ego``.

    ``(N, 3)`` points keep their world z. ``(N, 2)`` points (the annotation's route and target points carry
    no height) are put on the ego's ground plane, the plane through the ego origin spanned by its x and y
    axes: on a slope a point 30 m ahead then reads 30 m ahead, whatever the town's altitude.
    """
    points = np.asarray(points, dtype=np.float64)
    world2ego = np.asarray(world2ego, dtype=np.float64)
    if points.ndim == 1:
        points = points.reshape(1, -1)
    if points.shape[-1] == 2:
        points = np.concatenate([points, _ground_plane_z(world2ego, points)[:, None]], axis=1)
    points = points.reshape(-1, 3)
    return points @ world2ego[:2, :3].T + world2ego[:2, 3]


def to_ego3(world2ego: np.ndarray, points: np.ndarray) -> np.ndarray:
    """World ``(N, 3)`` points -> ego-frame ``(N, 3)``."""
    world2ego = np.asarray(world2ego, dtype=np.float64)
    return np.asarray(points, dtype=np.float64).reshape(-1, 3) @ world2ego[:3, :3].T + world2ego[:3, 3]


def _ground_plane_z(world2ego: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    # The ego z of a world point is row 2 of world2ego; solve it for the world z that makes it 0. That row's
    # z factor is cos(pitch) cos(roll) for an upright car, far from 0 on any road.
    row = world2ego[2]
    if abs(row[2]) < 1e-6:
        return np.full(len(points_xy), -row[3])
    return -(points_xy @ row[:2] + row[3]) / row[2]


def relative_yaw(world2ego: np.ndarray, local2world: np.ndarray) -> float:
    """Yaw (radians) of an object's x axis seen in the ego frame (both full 3-D rotations)."""
    rot = np.asarray(world2ego, dtype=np.float64)[:3, :3] @ np.asarray(local2world, dtype=np.float64)[:3, :3]
    return math.atan2(rot[1, 0], rot[0, 0])


def ego_speed(anno: dict) -> float | None:
    """Forward speed in m/s: the speedometer, else the ego box ``speed``; None when neither is recorded."""
    for value in (anno.get("speed"), anno["bounding_boxes"][0].get("speed")):
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


# ---------------------------------------------------------------------------------------------------
# Expert controls (``expert_assessment/{frame - 1:05}.npz``, key ``arr_0``: Think2Drive feature, value, action)

EXPERT_ASSESSMENT_DIR = "expert_assessment"
# (throttle, steer, brake) of Think2Drive's discrete actions 0-38; 30-38 also engage reverse.
EXPERT_ACTIONS = (
    (0.0, 0.0, 1.0),
    *((0.7, s, 0.0) for s in (-0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5)),
    *((0.3, s, 0.0) for s in (-0.7, -0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5, 0.7)),
    *((0.0, s, 0.0) for s in (-1.0, -0.6, -0.3, -0.1)),
    (1.0, 0.0, 0.0),
    *((0.0, s, 0.0) for s in (0.1, 0.3, 0.6, 1.0)),
    *((0.5, s, 0.0) for s in (-0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5)),
)


def expert_assessment_path(clip_dir: str | os.PathLike, frame: int) -> Path:
    """The collector saves frame ``f``'s assessment as ``{f - 1:05}.npz``: frame 0's is ``-0001.npz``."""
    return Path(clip_dir, EXPERT_ASSESSMENT_DIR, f"{str(frame - 1).zfill(5)}.npz")


def read_expert_action(clip_dir: str | os.PathLike, frame: int) -> tuple[float, float, float] | None:
    """(throttle, steer, brake) of the expert's action at ``frame``; None when the file is absent or unusable."""
    path = expert_assessment_path(clip_dir, frame)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            vector = np.asarray(data["arr_0"], dtype=np.float64).reshape(-1)
    except (OSError, KeyError, ValueError, EOFError):
        return None
    if len(vector) == 0 or not math.isfinite(vector[-1]):
        return None
    index = int(round(vector[-1]))
    return EXPERT_ACTIONS[index] if 0 <= index < len(EXPERT_ACTIONS) else None


# ---------------------------------------------------------------------------------------------------
# Cameras

def rig_intrinsic(camera: str, width: int = B2D_IMAGE_SIZE[0], height: int = B2D_IMAGE_SIZE[1]) -> np.ndarray:
    fov = CAMERA_RIG[camera]["fov"]
    focal = width / (2.0 * math.tan(math.radians(fov) / 2.0))
    return np.array([[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], dtype=np.float64)


def rig_cam2ego(camera: str) -> np.ndarray:
    rig = CAMERA_RIG[camera]
    return ue_matrix(rig["x"], rig["y"], rig["z"], 0.0, 0.0, rig["yaw"])


def ego2img(intrinsic: np.ndarray, cam2ego: np.ndarray) -> np.ndarray:
    """4x4 ego -> pixel projection (``u*d, v*d, d, 1``) for a camera with UE-axes ``cam2ego``."""
    k4 = np.eye(4)
    k4[:3, :3] = intrinsic
    return k4 @ UE_TO_OPTICAL @ np.linalg.inv(cam2ego)


def _finite_array(value, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as a float array of ``shape``, or None when absent, malformed or not finite."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.shape == shape and np.all(np.isfinite(array)) else None


def _positive_int(value, default: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return int(number) if math.isfinite(number) and number >= 1 else default


def camera_calibration(anno: dict) -> dict[str, np.ndarray]:
    """Per-camera ``intrinsic`` (6,3,3), ``cam2ego`` (6,4,4), ``lidar2img`` (6,4,4) and ``image_size`` (6,2) W,H.

    Uses ``anno.sensors`` where recorded; a field that is missing, None or not finite falls back, field by
    field, to the published rig (docs/bench2drive.md#camera-rig).
    """
    sensors = anno.get("sensors") or {}
    intrinsics, cam2egos, projections, sizes = [], [], [], []
    for camera in CAMERA_NAMES:
        entry = sensors.get(camera) or {}
        width = _positive_int(entry.get("image_size_x"), B2D_IMAGE_SIZE[0])
        height = _positive_int(entry.get("image_size_y"), B2D_IMAGE_SIZE[1])
        intrinsic = _finite_array(entry.get("intrinsic"), (3, 3))
        if intrinsic is None:
            intrinsic = rig_intrinsic(camera, width, height)
        cam2ego = _finite_array(entry.get("cam2ego"), (4, 4))
        if cam2ego is None:
            cam2ego = rig_cam2ego(camera)
        intrinsics.append(intrinsic)
        cam2egos.append(cam2ego)
        projections.append(ego2img(intrinsic, cam2ego))
        sizes.append((width, height))
    return dict(intrinsic=np.stack(intrinsics).astype(np.float32), cam2ego=np.stack(cam2egos).astype(np.float32),
                lidar2img=np.stack(projections).astype(np.float32), image_size=np.asarray(sizes, dtype=np.int32))


# ---------------------------------------------------------------------------------------------------
# HD map (HF ``rethinklab/Bench2Drive-Map``: ``<Town>_HD_map.npz``, key ``arr``). ``tools/gen_hdmap.py`` saves
# ``arr`` as an (N, 2) object array of (road_id, road) pairs; a road maps lane_id -> list of marking elements,
# plus one key for the road's trigger volumes, spelled ``Trigger_Volumes`` by the generator and the Zoo reader
# and ``TriggerVolumes`` in the published format description: both are read.

# Lane-marking types a car must not cross: what the map-boundary loss keeps the plan away from.
BOUNDARY_TYPES = ("Solid", "SolidSolid")
TRIGGER_VOLUME_KEYS = ("Trigger_Volumes", "TriggerVolumes")


def hd_map_path(map_root: str | os.PathLike, town: str) -> Path:
    return Path(map_root, f"{town}_HD_map.npz")


def hd_map_roads(arr) -> dict:
    """The road dict of an HD map's ``arr``: the shipped (N, 2) pairs array, a 0-d object array, or a dict."""
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.shape == ():
        arr = arr.item()
    if isinstance(arr, dict):
        return arr
    if isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.shape[1] == 2:
        return {row[0]: row[1] for row in arr}
    if isinstance(arr, np.ndarray) and arr.ndim == 1 and len(arr) == 0:
        return {}
    raise ValueError(f"expected an (N, 2) array of (road_id, road) pairs, got {type(arr).__name__} "
                     f"of shape {getattr(arr, 'shape', None)}")


def load_hd_map(path: str | os.PathLike) -> dict:
    """road_id -> road dict of a Bench2Drive HD-map file; damage raises :class:`CorruptFrameError`."""
    try:
        with np.load(path, allow_pickle=True) as data:
            return hd_map_roads(data["arr"])
    except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
        raise CorruptFrameError(f"unreadable HD map ({exc})", path) from None


def _element_points(element: dict) -> np.ndarray:
    """World (N, 3) points of a marking element (``Points``: ``((x, y, z), (roll, pitch, yaw)[, junction])``)."""
    points = []
    for point in element.get("Points", ()):
        location = point[0] if np.ndim(point[0]) == 1 else point
        points.append([float(v) for v in location[:3]])
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def load_hd_map_boundaries(path: str | os.PathLike, types: tuple[str, ...] = BOUNDARY_TYPES) -> list[np.ndarray]:
    """World (N, 3) polylines of the lane markings of ``types`` in a Bench2Drive HD-map file."""
    polylines = []
    for road in load_hd_map(path).values():
        if not isinstance(road, dict):
            continue
        for lane_id, elements in road.items():
            if lane_id in TRIGGER_VOLUME_KEYS or not isinstance(elements, (list, tuple)):
                continue
            for element in elements:
                if not isinstance(element, dict) or element.get("Type") not in types:
                    continue
                points = _element_points(element)
                if len(points) >= 2:
                    polylines.append(points)
    return polylines


def load_hd_map_trigger_volumes(path: str | os.PathLike) -> list[dict]:
    """Trigger volumes of an HD map: ``{"type": "StopSign"|"TrafficLight", "points": (K, 3), "parent": (3,)}``."""
    volumes = []
    for road in load_hd_map(path).values():
        if not isinstance(road, dict):
            continue
        for key in TRIGGER_VOLUME_KEYS:
            for volume in road.get(key) or ():
                points = np.asarray(volume.get("Points", ()), dtype=np.float64).reshape(-1, 3)
                parent = volume.get("ParentActor_Location")
                volumes.append(dict(type=str(volume.get("Type")), points=points,
                                    parent=None if parent is None else np.asarray(parent, dtype=np.float64)))
    return volumes


__all__ = ["ClipName", "CorruptFrameError", "parse_clip_name", "find_clips", "frame_ids", "anno_path", "image_path",
           "read_annotation", "check_jpeg", "yaw_matrix", "ue_matrix", "compass_to_yaw", "ego_world2ego", "ego_pose",
           "to_ego", "to_ego3", "relative_yaw", "ego_speed", "EXPERT_ACTIONS", "expert_assessment_path",
           "read_expert_action", "rig_intrinsic", "rig_cam2ego", "ego2img", "camera_calibration", "BOUNDARY_TYPES",
           "TRIGGER_VOLUME_KEYS", "hd_map_path", "hd_map_roads",
           "load_hd_map", "load_hd_map_boundaries", "load_hd_map_trigger_volumes"]
