"""Reading Bench2Drive clips: folder layout, per-frame annotations, poses and camera calibration.

Layout and keys follow BENCH2DRIVE.md §1 (the published ``docs/anno.md`` and ``tools/data_collect.py``):
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

CLIP_NAME = re.compile(r"^(?P<scenario>.+?)_(?P<town>Town\w+?)_Route(?P<route>\d+)_Weathe?r?(?P<weather>\d*)$")
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


def to_ego(world2ego: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """World (N, 2) points (z taken as the ego's height) -> ego-frame (N, 2)."""
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    rot, trans = world2ego[:2, :2], world2ego[:2, 3]
    return points_xy @ rot.T + trans


def ego_speed(anno: dict) -> float | None:
    """Forward speed in m/s: the speedometer, else the ego box ``speed``; None when neither is recorded."""
    for value in (anno.get("speed"), anno["bounding_boxes"][0].get("speed")):
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


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


def camera_calibration(anno: dict) -> dict[str, np.ndarray]:
    """Per-camera ``intrinsic`` (6,3,3), ``cam2ego`` (6,4,4), ``lidar2img`` (6,4,4) and ``image_size`` (6,2) W,H.

    Uses ``anno.sensors`` where recorded; falls back to the published rig (BENCH2DRIVE.md §1.8).
    """
    sensors = anno.get("sensors") or {}
    intrinsics, cam2egos, projections, sizes = [], [], [], []
    for camera in CAMERA_NAMES:
        entry = sensors.get(camera) or {}
        width = int(entry.get("image_size_x", B2D_IMAGE_SIZE[0]))
        height = int(entry.get("image_size_y", B2D_IMAGE_SIZE[1]))
        intrinsic = np.asarray(entry["intrinsic"], dtype=np.float64) if "intrinsic" in entry \
            else rig_intrinsic(camera, width, height)
        cam2ego = np.asarray(entry["cam2ego"], dtype=np.float64) if "cam2ego" in entry else rig_cam2ego(camera)
        intrinsics.append(intrinsic)
        cam2egos.append(cam2ego)
        projections.append(ego2img(intrinsic, cam2ego))
        sizes.append((width, height))
    return dict(intrinsic=np.stack(intrinsics).astype(np.float32), cam2ego=np.stack(cam2egos).astype(np.float32),
                lidar2img=np.stack(projections).astype(np.float32), image_size=np.asarray(sizes, dtype=np.int32))


# ---------------------------------------------------------------------------------------------------
# HD map (HF ``rethinklab/Bench2Drive-Map``: ``<Town>_HD_map.npz``, key ``arr`` -> road -> lane -> elements)

# Lane-marking types a car must not cross: what the map-boundary loss keeps the plan away from.
BOUNDARY_TYPES = ("Solid", "SolidSolid")


def hd_map_path(map_root: str | os.PathLike, town: str) -> Path:
    return Path(map_root, f"{town}_HD_map.npz")


def load_hd_map_boundaries(path: str | os.PathLike, types: tuple[str, ...] = BOUNDARY_TYPES) -> list[np.ndarray]:
    """World (N, 2) polylines of the lane markings of ``types`` in a Bench2Drive HD-map file.

    Each element's ``Points`` is a list of ``((x, y, z), (roll, pitch, yaw)[, is_junction])``; road entries
    that are not lane dicts (trigger volumes) are ignored.
    """
    try:
        with np.load(path, allow_pickle=True) as data:
            roads = data["arr"]
    except (OSError, KeyError, ValueError) as exc:
        raise CorruptFrameError(f"unreadable HD map ({exc})", path) from None
    if isinstance(roads, np.ndarray) and roads.shape == ():
        roads = roads.item()
    polylines = []
    for lanes in roads.values():
        if not isinstance(lanes, dict):
            continue
        for elements in lanes.values():
            if not isinstance(elements, (list, tuple)):
                continue
            for element in elements:
                if not isinstance(element, dict) or element.get("Type") not in types:
                    continue
                points = np.asarray([p[0][:2] for p in element.get("Points", ())], dtype=np.float64)
                if len(points) >= 2:
                    polylines.append(points)
    return polylines


__all__ = ["ClipName", "CorruptFrameError", "parse_clip_name", "find_clips", "frame_ids", "anno_path", "image_path",
           "read_annotation", "check_jpeg", "yaw_matrix", "ue_matrix", "compass_to_yaw", "ego_world2ego", "ego_pose",
           "to_ego", "ego_speed", "rig_intrinsic", "rig_cam2ego", "ego2img", "camera_calibration", "BOUNDARY_TYPES",
           "hd_map_path", "load_hd_map_boundaries"]
