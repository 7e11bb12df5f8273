"""The info index: one precomputed record per usable frame, so training never re-derives targets.

``build_clip_infos`` turns one Bench2Drive-layout clip into records (and a list of the frames it had to
skip, with the file and the reason); ``build_info_index`` runs it over all clips in worker processes and
writes ``<out>/b2d_infos_{train,val}.pkl``. Positions are 10 Hz frames; planning targets are every 5th
frame (2 Hz), as Bench2Drive-Zoo samples them.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from minddrive.constants import (CAMERA_NAMES, NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS, NUM_ROUTE_POINTS, PATH_ACTIONS,
                                 PATH_POINT_SPACING, PATH_TOKENS, ROUTE_NODES, ROUTE_POINT_SPACING, SPEED_ACTIONS, SPEED_TOKENS,
                                 WAYPOINT_DT, path_index_from_road_option)
from minddrive.data import bench2drive as b2d
from minddrive.errors import UserError
from minddrive.utils.geometry import navigation_route, resample_polyline
from minddrive.utils.io import atomic_path

INDEX_VERSION = 1
FRAME_RATE = 10.0
SAMPLE_INTERVAL = int(round(WAYPOINT_DT * FRAME_RATE))  # 10 Hz frames per 2 Hz waypoint
NUM_HISTORY_STEPS = 4        # 2 s of past positions at 2 Hz
MAX_AGENTS = 32              # nearest agents kept for the collision loss
AGENT_RADIUS = 75.0          # metres (2-D), Bench2Drive-Zoo's MAX_DISTANCE
AGENT_MAX_DZ = 10.0          # metres of height difference to the ego, Zoo's FILTER_Z_SHRESHOLD (overpasses)
LABEL_RULES = ("last", "question")   # where the meta-action QA of a Chat-B2D-plus file is (see meta_action_from_vqa)
CONTROL_SOURCES = ("expert", "anno")  # expert_assessment's action (Zoo), or the anno's throttle/steer/brake
LABEL_SOURCES = ("vqa", "derived", "missing")
DEFAULT_SPEED_LIMIT = 30.0 / 3.6  # CARLA's urban default when no speed-limit sign has been passed
AGENT_CLASSES = ("vehicle", "walker")
MAP_RADIUS = 30.0            # metres of road boundary kept around the ego (the plan reaches ~25 m)
MAP_POINT_SPACING = 2.0
MAP_POINTS_PER_POLYLINE = NUM_PATH_POINTS
MAX_MAP_POLYLINES = 24


# ---------------------------------------------------------------------------------------------------
# Meta-action labels

def derive_speed_action(speeds: list[float | None] | np.ndarray, dt: float = WAYPOINT_DT) -> int:
    """Speed meta-action index from a speed profile ``[v_now, v_+dt, ...]`` (m/s); -1 when too short.

    The embedded expert's labelling rule (``minddrive.sim.expert.label_speed_action``), so frames without a
    Chat-B2D-plus meta-action QA are labelled exactly as the simulator labels its own clips.
    """
    from minddrive.sim.expert import label_speed_action

    profile = np.asarray([v for v in speeds if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(profile) < 2:
        return -1
    return int(label_speed_action(profile[0], profile[1:], dt))


def _phrase_pattern(names: tuple[str, ...], tokens: tuple[str, ...]) -> re.Pattern:
    # Longest first so "slow down rapidly" wins over "slow down"; tokens and plain phrases both parse.
    alternatives = sorted(tokens + names, key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alternatives))


_SPEED_RE = _phrase_pattern(SPEED_ACTIONS, SPEED_TOKENS)
_PATH_RE = _phrase_pattern(PATH_ACTIONS, PATH_TOKENS)


def parse_meta_action(answer: str) -> tuple[int, int]:
    """``"The car should be<stop><lanefollow>."`` (tokens or plain words) -> (speed, path); -1 where absent."""
    def index(pattern: re.Pattern, names: tuple[str, ...], tokens: tuple[str, ...]) -> int:
        match = pattern.search(answer)
        if match is None:
            return -1
        text = match.group(0)
        return tokens.index(text) if text in tokens else names.index(text)

    return index(_SPEED_RE, SPEED_ACTIONS, SPEED_TOKENS), index(_PATH_RE, PATH_ACTIONS, PATH_TOKENS)


# ---------------------------------------------------------------------------------------------------
# Polylines

# ---------------------------------------------------------------------------------------------------
# Road boundaries from the HD map

class BoundaryMap:
    """A town's boundary polylines, densified once, cut into fixed-size ego-frame pieces per frame."""

    def __init__(self, polylines: list[np.ndarray]):
        self.polylines = [_densify(p, MAP_POINT_SPACING) for p in polylines]
        self.boxes = np.array([[*p[:, :2].min(0), *p[:, :2].max(0)] for p in self.polylines]).reshape(-1, 4)

    def around(self, world2ego: np.ndarray, ego_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K, P, 2)`` ego-frame pieces within ``MAP_RADIUS`` (nearest first) and their ``(K, P)`` mask."""
        near = ((self.boxes[:, 0] - MAP_RADIUS <= ego_xy[0]) & (self.boxes[:, 2] + MAP_RADIUS >= ego_xy[0])
                & (self.boxes[:, 1] - MAP_RADIUS <= ego_xy[1]) & (self.boxes[:, 3] + MAP_RADIUS >= ego_xy[1]))
        pieces = []
        step = MAP_POINTS_PER_POLYLINE - 1  # consecutive pieces share an end point: no gap in the boundary
        for index in np.flatnonzero(near):
            local = b2d.to_ego(world2ego, self.polylines[index])
            inside = np.linalg.norm(local, axis=1) <= MAP_RADIUS
            for run in np.split(np.arange(len(local)), np.flatnonzero(np.diff(inside.astype(np.int8)) != 0) + 1):
                if not inside[run[0]] or len(run) < 2:
                    continue
                for start in range(0, len(run) - 1, step):
                    piece = local[run[start:start + MAP_POINTS_PER_POLYLINE]]
                    pieces.append((float(np.linalg.norm(piece, axis=1).min()), piece))
        pieces.sort(key=lambda item: item[0])
        pieces = pieces[:MAX_MAP_POLYLINES]
        points = np.zeros((len(pieces), MAP_POINTS_PER_POLYLINE, 2), dtype=np.float32)
        mask = np.zeros((len(pieces), MAP_POINTS_PER_POLYLINE), dtype=np.float32)
        for k, (_, piece) in enumerate(pieces):
            points[k, :len(piece)] = piece
            mask[k, :len(piece)] = 1.0
        return points, mask


def _densify(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` metres along ``polyline`` (both ends kept; any number of coordinates)."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return polyline[:1]
    samples = np.append(np.arange(0.0, arc[-1], spacing), arc[-1])
    return np.stack([np.interp(samples, arc, polyline[:, k]) for k in range(polyline.shape[1])], axis=1)


@lru_cache(maxsize=2)  # a worker indexes clips of one or two towns at a time (jobs are sorted by town)
def _town_boundaries(path: str) -> BoundaryMap | None:
    if not os.path.isfile(path):
        return None
    try:
        return BoundaryMap(b2d.load_hd_map_boundaries(path))
    except b2d.CorruptFrameError as exc:  # a broken town map would silently drop every boundary of the town
        raise UserError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------
# One clip

@dataclass
class ClipResult:
    clip: str
    infos: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) per skipped frame


def find_vqa_file(vqa_root: str | None, clip_name: str, frame: int, splits: tuple[str, ...]) -> Path | None:
    """``<vqa_root>/<split>/<clip>/{frame:05}.json`` for the first split that has it."""
    if not vqa_root:
        return None
    for split in splits:
        path = Path(vqa_root, split, clip_name, f"{frame:05d}.json")
        if path.is_file():
            return path
    return None


def read_vqa_turns(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Chat-B2D file -> ``[(question, answer), ...]``; malformed content raises CorruptFrameError."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        turns = []
        for turn in data:
            human, gpt = turn[0], turn[1]
            if human.get("from") != "human" or gpt.get("from") != "gpt":
                raise ValueError("turn is not a [human, gpt] pair")
            turns.append((str(human["value"]), str(gpt["value"])))
        return turns
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise b2d.CorruptFrameError(f"malformed Chat-B2D VQA ({exc})", path) from None


def meta_action_from_vqa(turns: list[tuple[str, str]], rule: str = "last") -> tuple[int, int] | None:
    """(speed, path) from the meta-action QA of a Chat-B2D-plus file, or None when it has none.

    ``rule="last"`` reads the last QA pair, as upstream MindDrive's loader does (it takes the file's last pair
    as the meta-action QA whatever its question says); ``rule="question"`` reads the first pair whose question
    contains ``DECISION_QUESTION``.
    """
    from minddrive.constants import DECISION_QUESTION

    if rule == "last":
        candidates = turns[-1:]
    elif rule == "question":
        candidates = [(q, a) for q, a in turns if DECISION_QUESTION in q]
    else:
        raise ValueError(f"label rule must be one of {LABEL_RULES}, got {rule!r}")
    for _, answer in candidates:
        speed, path = parse_meta_action(answer)
        if speed >= 0:
            return speed, path
    return None


def _speed_limit_from_signs(anno: dict, world2ego: np.ndarray) -> float | None:
    """Speed limit (m/s) of the nearest ``traffic.speed_limit.NN`` sign within 20 m ahead, if any."""
    best = None
    for box in anno["bounding_boxes"][1:]:
        type_id = str(box.get("type_id", ""))
        if box.get("class") != "traffic_sign" or not type_id.startswith("traffic.speed_limit."):
            continue
        loc = box.get("center") or box.get("location")
        if not loc or len(loc) < 2:
            continue
        x, y = b2d.to_ego(world2ego, np.asarray(loc[:3], dtype=np.float64))[0]
        if 0.0 < x < 20.0 and abs(y) < 10.0 and (best is None or x < best[0]):
            try:
                best = (x, float(type_id.rsplit(".", 1)[1]) / 3.6)
            except ValueError:
                continue
    return None if best is None else best[1]


def _box_center(box: dict) -> np.ndarray:
    """World centre: (3,) where the box has a height, else (2,) (then read on the ego's ground plane)."""
    loc = box.get("center") if box.get("center") is not None else box["location"]
    return np.asarray(loc[:3], dtype=np.float64)


def _box_local2world(box: dict) -> np.ndarray:
    # Static (parked) vehicles have unreliable rotation; their world2vehicle is authoritative.
    for key in ("world2vehicle", "world2ped"):
        if box.get(key) is not None:
            return np.linalg.inv(np.asarray(box[key], dtype=np.float64))
    pitch, roll, yaw = (float(v) for v in box["rotation"][:3])
    return b2d.ue_matrix(0.0, 0.0, 0.0, pitch, roll, yaw)


@dataclass
class _Clip:
    """What every frame record of one clip is derived from (annotations parsed once, poses precomputed)."""

    root: Path
    clip: str
    name: b2d.ClipName
    annos: dict[int, dict]
    world2ego: dict[int, np.ndarray]
    vqa_root: str | None
    boundary_map: BoundaryMap | None

    def __post_init__(self):
        self.dir = self.root / self.clip
        self.frames = sorted(self.annos)
        self.pose = {f: np.linalg.inv(m) for f, m in self.world2ego.items()}
        self.position = {f: p[:3, 3].copy() for f, p in self.pose.items()}  # world x, y, z
        self.speeds = {f: _speed_with_fallback(f, self.annos, self.position) for f in self.frames}
        # Route nodes: the ordered distinct navigation targets seen along the clip.
        self.nodes, self.node_of_frame = [], {}
        for f in self.frames:
            target = _target_world(self.annos[f])
            if target is not None and (not self.nodes or np.linalg.norm(self.nodes[-1] - target) > 0.5):
                self.nodes.append(target)
            self.node_of_frame[f] = len(self.nodes) - 1

    def ego(self, f: int, world_points) -> np.ndarray:
        """World points ((N, 3), or (N, 2) on the ego's ground plane) -> ego-frame x, y of frame ``f``."""
        return b2d.to_ego(self.world2ego[f], world_points)


def build_clip_infos(root: str | os.PathLike, clip: str, vqa_root: str | None = None,
                     vqa_splits: tuple[str, ...] = ("train", "val"), map_root: str | None = None,
                     label_rule: str = "last", controls: str = "expert") -> ClipResult:
    """Records for every usable frame of ``root/clip``; skipped frames are listed with path and reason.

    A frame is skipped when its annotation is unreadable or has no usable ego pose, when one of its six
    images is missing or truncated, or when its VQA file is malformed. A skipped annotation is also no
    target for other frames (their masks say so). Road boundaries come from
    ``<map_root>/<Town>_HD_map.npz`` when given and present, else records carry none (shape (0, P, 2)).
    """
    clip_dir = Path(root, clip)
    name = b2d.parse_clip_name(Path(clip).name)
    result = ClipResult(clip=clip)
    annos, world2ego = {}, {}
    for frame in b2d.frame_ids(clip_dir):
        path = b2d.anno_path(clip_dir, frame)
        try:
            anno = b2d.read_annotation(path)
            world2ego[frame] = b2d.ego_world2ego(anno)
            annos[frame] = anno
        except b2d.CorruptFrameError as exc:
            result.skipped.append((str(path), exc.reason))
    if not annos:
        return result
    boundary_map = _town_boundaries(str(b2d.hd_map_path(map_root, name.town))) if map_root else None
    data = _Clip(Path(root), clip, name, annos, world2ego, vqa_root, boundary_map)

    speed_limit = None
    for f in data.frames:
        speed_limit = _speed_limit_from_signs(annos[f], world2ego[f]) or speed_limit
        images = [b2d.image_path(clip_dir, cam, f) for cam in CAMERA_NAMES]
        bad = [(p, why) for p in images if (why := b2d.check_jpeg(p)) is not None]
        if bad:
            result.skipped.append((str(bad[0][0]), bad[0][1]))
            continue
        vqa_path = find_vqa_file(vqa_root, clip_dir.name, f, vqa_splits)
        try:
            vqa_meta = meta_action_from_vqa(read_vqa_turns(vqa_path), label_rule) if vqa_path is not None else None
            record = _frame_record(data, f, images, vqa_path, vqa_meta, speed_limit or DEFAULT_SPEED_LIMIT)
            if controls == "expert":
                _controls_from_expert(record, clip_dir, f)
            result.infos.append(record)
        except b2d.CorruptFrameError as exc:
            result.skipped.append((exc.path or str(b2d.anno_path(clip_dir, f)), exc.reason))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # A field missing or of the wrong type: report the frame, never index half-derived targets.
            result.skipped.append((str(b2d.anno_path(clip_dir, f)), f"malformed annotation ({type(exc).__name__}: {exc})"))
    return result


def _frame_record(data: _Clip, f: int, images: list[Path], vqa_path: Path | None,
                  vqa_meta: tuple[int, int] | None, speed_limit: float) -> dict:
    """The info record of frame ``f``: everything training needs, in the frame's GT ego frame."""
    anno = data.annos[f]
    fut_frames = [f + SAMPLE_INTERVAL * k for k in range(1, NUM_FUTURE_WAYPOINTS + 1)]
    fut_mask = np.array([g in data.annos for g in fut_frames], dtype=np.float32)
    fut_traj = np.zeros((NUM_FUTURE_WAYPOINTS, 2), dtype=np.float32)
    for i, g in enumerate(fut_frames):
        if g in data.annos:
            fut_traj[i] = data.ego(f, data.position[g])[0]

    # Past positions at 2 Hz; before the clip starts the oldest known one is repeated.
    history = np.zeros((NUM_HISTORY_STEPS, 2), dtype=np.float32)
    last = np.zeros(2)
    for i in range(NUM_HISTORY_STEPS):
        g = f - SAMPLE_INTERVAL * (i + 1)
        if g in data.annos:
            last = data.ego(f, data.position[g])[0]
        history[i] = last

    driven = np.stack([data.position[g] for g in data.frames if g >= f])
    path_points, path_mask = resample_polyline(data.ego(f, driven), PATH_POINT_SPACING, NUM_PATH_POINTS)

    road_option = _road_option(anno)
    command = path_index_from_road_option(road_option)
    target = _target_world(anno)
    target_point = data.ego(f, target)[0] if target is not None else np.zeros(2)
    node = data.node_of_frame[f]
    nodes_ahead = data.nodes[node:node + ROUTE_NODES] if node >= 0 else []
    route = navigation_route(data.ego(f, np.stack(nodes_ahead)) if nodes_ahead else np.zeros((0, 2)),
                             NUM_ROUTE_POINTS, ROUTE_POINT_SPACING)

    if vqa_meta is not None:
        speed_action, path_action = vqa_meta
        path_action = command if path_action < 0 else path_action
        label_source = "vqa"
    else:
        profile = [data.speeds[f]] + [data.speeds[g] for g in fut_frames if g in data.annos]
        speed_action, path_action = derive_speed_action(profile), command
        label_source = "derived" if speed_action >= 0 else "missing"

    agent_boxes, agent_mask = _agent_futures(anno, data.annos, fut_frames, data.world2ego[f], data.pose[f])
    if data.boundary_map is not None:
        map_boundaries, map_mask = data.boundary_map.around(data.world2ego[f], data.position[f])
    else:
        map_boundaries = np.zeros((0, MAP_POINTS_PER_POLYLINE, 2), dtype=np.float32)
        map_mask = np.zeros((0, MAP_POINTS_PER_POLYLINE), dtype=np.float32)
    calib = b2d.camera_calibration(anno)
    pose = data.pose[f]
    return dict(
        clip=data.clip, clip_name=data.dir.name, frame=f, town=data.name.town, scenario=data.name.scenario,
        anno_path=os.path.relpath(b2d.anno_path(data.dir, f), data.root),
        image_paths=[os.path.relpath(p, data.root) for p in images],
        vqa_path=None if vqa_path is None else os.path.relpath(vqa_path, data.vqa_root),
        ego_pose=np.array([*data.position[f][:2], math.atan2(pose[1, 0], pose[0, 0])], dtype=np.float64),
        ego_state=_ego_state(anno, data.speeds[f], speed_limit),
        ego_history=history, ego_fut_traj=fut_traj, ego_fut_mask=fut_mask,
        path_points=path_points, path_mask=path_mask,
        road_option=road_option, command=command, target_point=target_point.astype(np.float32), route=route,
        cam_intrinsic=calib["intrinsic"], cam2ego=calib["cam2ego"], lidar2img=calib["lidar2img"],
        image_size=calib["image_size"],
        agent_boxes=agent_boxes, agent_mask=agent_mask, map_boundaries=map_boundaries, map_mask=map_mask,
        speed_action=int(speed_action), path_action=int(path_action), label_source=label_source,
        control_source="anno",
    )


def _road_option(anno: dict) -> int:
    for key in ("command_near", "next_command", "command_far"):
        if anno.get(key) is not None:
            return int(anno[key])
    return -1


def _target_world(anno: dict) -> np.ndarray | None:
    for xk, yk in (("x_target", "y_target"), ("x_command_far", "y_command_far"), ("x_command_near", "y_command_near")):
        if anno.get(xk) is not None and anno.get(yk) is not None:
            return np.array([float(anno[xk]), float(anno[yk])])
    return None


def _speed_with_fallback(frame: int, annos: dict[int, dict], position: dict[int, np.ndarray]) -> float:
    """Recorded speed, else the displacement to a neighbouring frame (the speedometer may be None)."""
    speed = b2d.ego_speed(annos[frame])
    if speed is not None:
        return speed
    for a, b in ((frame, frame + 1), (frame - 1, frame)):  # 3-D displacement: the car's own path length
        if a in position and b in position:
            return float(np.linalg.norm(position[b] - position[a]) * FRAME_RATE)
    return 0.0


def _ego_state(anno: dict, speed: float, speed_limit: float) -> np.ndarray:
    acc = anno.get("acceleration") or [0.0, 0.0, 0.0]
    gyro = anno.get("angular_velocity") or [0.0, 0.0, 0.0]
    values = dict(speed=speed, acc_x=acc[0], acc_y=acc[1], yaw_rate=gyro[2], steer=anno.get("steer"),
                  throttle=anno.get("throttle"), brake=anno.get("brake"), speed_limit=speed_limit)
    from minddrive.constants import EGO_STATE_FIELDS

    state = np.array([float(values[k]) if values[k] is not None else 0.0 for k in EGO_STATE_FIELDS], dtype=np.float32)
    return np.nan_to_num(state, nan=0.0, posinf=0.0, neginf=0.0)


def _agent_futures(anno: dict, annos: dict[int, dict], fut_frames: list[int], world2ego: np.ndarray,
                   ego2world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Future boxes ``[x, y, length, width, yaw]`` (current ego frame) of the nearest agents, matched by id.

    Agents are kept as Bench2Drive-Zoo keeps boxes: within ``AGENT_RADIUS`` (2-D) and ``AGENT_MAX_DZ`` of the
    ego's height (a car on an overpass is no collision). Zoo's third filter, visibility in the depth images,
    is not applied: these boxes feed the collision loss, and a car hidden behind a truck still occupies road.
    """
    ego_z = float(ego2world[2, 3])
    agents = []
    for box in anno["bounding_boxes"][1:]:
        if box.get("class") not in AGENT_CLASSES or box.get("id") is None:
            continue
        center = _box_center(box)
        location = box.get("location") or center
        if len(location) >= 3 and abs(float(location[2]) - ego_z) > AGENT_MAX_DZ:
            continue
        distance = float(np.hypot(*(center[:2] - ego2world[:2, 3])))
        if distance <= AGENT_RADIUS:
            agents.append((distance, str(box["id"])))
    agents = [agent_id for _, agent_id in sorted(agents)[:MAX_AGENTS]]
    boxes = np.zeros((len(agents), NUM_FUTURE_WAYPOINTS, 5), dtype=np.float32)
    mask = np.zeros((len(agents), NUM_FUTURE_WAYPOINTS), dtype=np.float32)
    slot = {agent_id: i for i, agent_id in enumerate(agents)}
    for t, g in enumerate(fut_frames):
        if g not in annos:
            continue
        for box in annos[g]["bounding_boxes"][1:]:
            i = slot.get(str(box.get("id")))
            if i is None:
                continue
            x, y = b2d.to_ego(world2ego, _box_center(box))[0]
            yaw = b2d.relative_yaw(world2ego, _box_local2world(box))
            extent = box.get("extent") or [0.0, 0.0, 0.0]
            boxes[i, t] = (x, y, 2.0 * extent[0], 2.0 * extent[1], yaw)
            mask[i, t] = 1.0
    return boxes, mask


def _controls_from_expert(record: dict, clip_dir: Path, frame: int) -> None:
    """Overwrite the record's steer/throttle/brake with the frame's ``expert_assessment`` action, as Zoo reads
    them (the anno's controls are the ones applied, the expert's are its decision); kept when absent."""
    from minddrive.constants import EGO_STATE_FIELDS

    action = b2d.read_expert_action(clip_dir, frame)
    if action is None:
        return
    state = record["ego_state"]
    for name, value in zip(("throttle", "steer", "brake"), action):
        state[EGO_STATE_FIELDS.index(name)] = value
    record["control_source"] = "expert"


# ---------------------------------------------------------------------------------------------------
# The whole index

def read_split_file(path: str | os.PathLike) -> set[str]:
    """Validation clip names from ``{"val": ["v1/<clip>", ...]}`` (Zoo's split file)."""
    from minddrive.utils.io import read_json

    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("val"), list):
        raise UserError(f"{path}: expected {{\"val\": [\"v1/<clip>\", ...]}}")
    return {Path(p).name for p in data["val"]}


def _build_one(job: tuple) -> ClipResult:
    root, clip, vqa_root, splits, map_root, label_rule, controls = job
    return build_clip_infos(root, clip, vqa_root, splits, map_root, label_rule=label_rule, controls=controls)


def label_counts(infos: list[dict]) -> dict[str, int]:
    """How many records got their meta-action label from each source (``LABEL_SOURCES``)."""
    counts = dict.fromkeys(LABEL_SOURCES, 0)
    for info in infos:
        counts[info["label_source"]] = counts.get(info["label_source"], 0) + 1
    return counts


def build_info_index(root: str | os.PathLike, split_file: str | os.PathLike | None, out: str | os.PathLike,
                     vqa_root: str | None = None, workers: int = 0, progress: bool = True,
                     log=print, map_root: str | None = None, label_rule: str = "last",
                     controls: str = "expert") -> dict[str, object]:
    """Index all clips under ``root``; write ``b2d_infos_train.pkl`` / ``b2d_infos_val.pkl`` into ``out``.

    ``label_rule`` says where a Chat-B2D-plus file's meta-action QA is (``LABEL_RULES``); ``controls`` where
    the ego state's steer/throttle/brake come from (``CONTROL_SOURCES``). Returns a summary ``{"train": n,
    "val": n, "skipped": [(path, reason)], "clips": n, "labels": {split: {source: n}}}``.
    """
    if label_rule not in LABEL_RULES:
        raise UserError(f"label rule: expected one of {', '.join(LABEL_RULES)}, got {label_rule!r}")
    if controls not in CONTROL_SOURCES:
        raise UserError(f"controls: expected one of {', '.join(CONTROL_SOURCES)}, got {controls!r}")
    from tqdm import tqdm

    if not os.path.isdir(root):
        raise UserError(f"{root}: data root not found (expected Bench2Drive clips, e.g. data/bench2drive/v1/<clip>/)")
    clips = b2d.find_clips(root)
    if not clips:
        raise UserError(f"{root}: no clips found (expected <clip>/anno/*.json.gz one or two levels down)")
    val_names = read_split_file(split_file) if split_file else set()
    if map_root and not os.path.isdir(map_root):
        raise UserError(f"{map_root}: HD map folder not found (expected <Town>_HD_map.npz files)")
    # Sorted by town so each worker's small map cache is reused across consecutive clips.
    jobs = sorted(((os.fspath(root), clip, vqa_root, _vqa_splits(clip, val_names), map_root, label_rule, controls)
                   for clip in clips),
                  key=lambda job: (b2d.parse_clip_name(job[1]).town, job[1]))

    results: list[ClipResult] = []
    bar = tqdm(total=len(jobs), desc="prepare-data", unit="clip", disable=not progress)
    if workers and workers > 1:
        # fork where the platform has it: workers inherit the imported modules instead of re-importing them.
        with get_context("fork" if "fork" in get_all_start_methods() else "spawn").Pool(workers) as pool:
            for res in pool.imap_unordered(_build_one, jobs):
                results.append(res)
                bar.update()
    else:
        for job in jobs:
            results.append(_build_one(job))
            bar.update()
    bar.close()
    results.sort(key=lambda r: r.clip)  # worker completion order must not change the index

    splits: dict[str, list[dict]] = {"train": [], "val": []}
    skipped: list[tuple[str, str]] = []
    for res in results:
        splits["val" if Path(res.clip).name in val_names else "train"].extend(res.infos)
        skipped.extend(res.skipped)
    for path, reason in skipped:
        log(f"skipped {path}: {reason}")
    log(f"skipped {len(skipped)} frame(s); indexed {len(splits['train'])} train and {len(splits['val'])} val "
        f"frames from {len(clips)} clip(s)")
    labels = {split: label_counts(infos) for split, infos in splits.items()}
    for split, counts in labels.items():
        log(f"{split} meta-action labels ({label_rule} QA pair): " + ", ".join(f"{n} {k}" for k, n in counts.items()))

    for split, infos in splits.items():
        metadata = dict(version=INDEX_VERSION, split=split, data_root=os.path.abspath(root),
                        vqa_root=os.path.abspath(vqa_root) if vqa_root else None,
                        map_root=os.path.abspath(map_root) if map_root else None,
                        sample_interval=SAMPLE_INTERVAL, num_history=NUM_HISTORY_STEPS, skipped=skipped,
                        label_rule=label_rule, controls=controls, labels=labels[split])
        with atomic_path(Path(out, f"b2d_infos_{split}.pkl")) as tmp:
            with open(tmp, "wb") as handle:
                pickle.dump(dict(metadata=metadata, infos=infos), handle, protocol=pickle.HIGHEST_PROTOCOL)
    return dict(train=len(splits["train"]), val=len(splits["val"]), skipped=skipped, clips=len(clips), labels=labels)


def _vqa_splits(clip: str, val_names: set[str]) -> tuple[str, ...]:
    return ("val", "train") if Path(clip).name in val_names else ("train", "val")


def load_info_index(path: str | os.PathLike) -> tuple[list[dict], dict]:
    """Read an index written by :func:`build_info_index` -> ``(infos, metadata)``."""
    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: info index not found (run `minddrive prepare-data` first)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise UserError(f"{path}: not a readable info index ({exc})") from None
    if not isinstance(data, dict) or data.get("metadata", {}).get("version") != INDEX_VERSION:
        raise UserError(f"{path}: info index version mismatch (expected {INDEX_VERSION}); rerun prepare-data")
    return data["infos"], data["metadata"]
