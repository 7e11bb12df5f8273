"""Write a clip field for field in the format of Bench2Drive's data collector, on a hill.

Written from the documented format (the collector's annotation keys, the Bench2Drive-Map generator's array
layout, Chat-B2D-plus's files), independently of the project's reader and of the simulator's writer, so a
test that reads it checks the reader against the format rather than against itself:

* ``anno/{frame:05}.json.gz`` (gzip JSON, indent 4): top-level keys as the collector saves them; rotations
  are ``[pitch, roll, yaw]`` in degrees; ``world2*`` matrices are CARLA's ``Transform.get_inverse_matrix()``;
  ``bounding_boxes[0]`` is the ego; ``sensors.CAM_*`` carry ``intrinsic``, ``world2cam``, ``cam2ego``.
* ``camera/rgb_*/{frame:05}.jpg``: JPEG quality 20, ``width x height`` (Bench2Drive: 1600 x 900).
* ``expert_assessment/{frame - 1:05}.npz``: key ``arr_0`` = feature, value, action index.
* ``<vqa_root>/train/<clip>/{frame:05}.json``: Chat-B2D-plus turns, the meta-action QA last.
* ``<map_root>/<Town>_HD_map.npz``: key ``arr``, an (N, 2) object array of (road_id, road) pairs.

The ego drives straight at ``speed`` up a road of ``slope_deg`` (pitch) and ``roll_deg`` (cross fall),
heading ``yaw_deg``, starting at height ``z0``. Distances along the road are the ego-frame x of the
truth, so a test can state its expectation in metres along the road.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

CAMERA_RIG = {  # name: (folder, x, y, z, yaw deg, fov deg), Bench2Drive's collection rig
    "CAM_FRONT": ("rgb_front", 0.80, 0.00, 1.60, 0.0, 70.0),
    "CAM_FRONT_LEFT": ("rgb_front_left", 0.27, -0.55, 1.60, -55.0, 70.0),
    "CAM_FRONT_RIGHT": ("rgb_front_right", 0.27, 0.55, 1.60, 55.0, 70.0),
    "CAM_BACK": ("rgb_back", -2.00, 0.00, 1.60, 180.0, 110.0),
    "CAM_BACK_LEFT": ("rgb_back_left", -0.32, -0.55, 1.60, -110.0, 70.0),
    "CAM_BACK_RIGHT": ("rgb_back_right", -0.32, 0.55, 1.60, 110.0, 70.0),
}
LIDAR = (-0.39, 0.0, 1.84)
LANE_HALF_WIDTH = 1.75
META_QUESTION = "What actions should the car be taking?"


def transform(x, y, z, pitch=0.0, roll=0.0, yaw=0.0) -> np.ndarray:
    """CARLA ``Transform(Location, Rotation).get_matrix()``; angles in degrees."""
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    return np.array([[cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr, x],
                     [sy * cp, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr, y],
                     [sp, -cp * sr, cp * cr, z], [0.0, 0.0, 0.0, 1.0]])


@dataclass
class Hill:
    """A straight road up a plane: its frame is the ego's frame at time 0."""

    x0: float = 250.0
    y0: float = -120.0
    z0: float = 30.0
    yaw_deg: float = 30.0
    slope_deg: float = 5.0
    roll_deg: float = 0.0
    speed: float = 5.0
    road: np.ndarray = field(init=False)

    def __post_init__(self):
        self.road = transform(self.x0, self.y0, self.z0, self.slope_deg, self.roll_deg, self.yaw_deg)

    def world(self, along: float, lateral: float = 0.0, up: float = 0.0) -> np.ndarray:
        return (self.road @ [along, lateral, up, 1.0])[:3]

    def pose(self, along: float, lateral: float = 0.0, up: float = 0.0, yaw_offset: float = 0.0) -> np.ndarray:
        """An object standing on the road, turned ``yaw_offset`` degrees from the road's direction."""
        return self.road @ transform(along, lateral, up, 0.0, 0.0, yaw_offset)

    def rotation(self, yaw_offset: float = 0.0) -> list[float]:
        return rotation_of(self.pose(0.0, yaw_offset=yaw_offset))


def rotation_of(matrix: np.ndarray) -> list[float]:
    """``[pitch, roll, yaw]`` in degrees of a CARLA transform matrix (yaw in [0, 360) as the collector's)."""
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, matrix[2, 0]))))
    roll = math.degrees(math.atan2(-matrix[2, 1], matrix[2, 2]))
    yaw = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])) % 360.0
    return [pitch, roll, yaw]


def _box(cls: str, actor_id: str, pose: np.ndarray, rotation: list[float], extent, world2_key: str | None,
         ego_xy, **extra) -> dict:
    ext = np.asarray(extent, dtype=np.float64)
    corners = [(sx, sy, sz) for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]
    center = (pose @ [0.0, 0.0, ext[2], 1.0])[:3]
    entry = {"class": cls, "id": actor_id, "location": pose[:3, 3].tolist(), "rotation": rotation,
             "bbx_loc": [0.0, 0.0, float(ext[2])], "center": center.tolist(), "extent": ext.tolist(),
             "world_cord": [(pose @ [sx * ext[0], sy * ext[1], ext[2] + sz * ext[2], 1.0])[:3].tolist()
                            for sx, sy, sz in corners],
             "semantic_tags": [14], "road_id": 7, "lane_id": -1, "section_id": 0,
             "distance": float(math.hypot(pose[0, 3] - ego_xy[0], pose[1, 3] - ego_xy[1]))}
    if world2_key:
        entry[world2_key] = np.linalg.inv(pose).tolist()
    entry.update(extra)
    return entry


def _sensors(ego2world: np.ndarray, rotation: list[float], width: int, height: int) -> dict:
    sensors = {}
    for name, (_, x, y, z, yaw, fov) in CAMERA_RIG.items():
        focal = width / (2.0 * math.tan(math.radians(fov) / 2.0))
        cam2ego = transform(x, y, z, 0.0, 0.0, yaw)
        cam2world = ego2world @ cam2ego
        sensors[name] = {"location": cam2world[:3, 3].tolist(),
                         "rotation": [rotation[0], rotation[1], (rotation[2] + yaw) % 360.0],
                         "intrinsic": [[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]],
                         "world2cam": np.linalg.inv(cam2world).tolist(), "cam2ego": cam2ego.tolist(),
                         "fov": fov, "image_size_x": width, "image_size_y": height}
    lidar2ego = transform(*LIDAR)
    lidar2world = ego2world @ lidar2ego
    sensors["LIDAR_TOP"] = {"location": lidar2world[:3, 3].tolist(), "rotation": rotation,
                            "world2lidar": np.linalg.inv(lidar2world).tolist(), "lidar2ego": lidar2ego.tolist()}
    return sensors


def annotation(hill: Hill, frame: int, width: int, height: int) -> dict:
    t = frame / 10.0
    along = hill.speed * t
    ego2world = hill.pose(along)
    ego_xy = ego2world[:2, 3]
    rotation = hill.rotation()
    ego = _box("ego_vehicle", "1", ego2world, rotation, [2.45, 1.06, 0.76], "world2ego", ego_xy,
               type_id="vehicle.lincoln.mkz_2020", base_type="car", color="0,0,0", speed=hill.speed, brake=0.0)
    ego["semantic_tags"] = [[14]]
    del ego["distance"]
    ahead = hill.pose(along + 12.0, up=0.0)                   # same lane, 12 m up the road, same heading
    crossing = hill.pose(along + 20.0, lateral=3.5, yaw_offset=90.0)
    overpass = ego2world.copy()
    overpass[2, 3] += 15.0                                     # a bridge right above the ego
    far = hill.pose(along + 80.0)                              # beyond Zoo's 75 m
    light = hill.pose(40.0, lateral=3.0)
    boxes = [
        ego,
        _box("vehicle", "101", ahead, rotation, [2.4, 1.0, 0.8], "world2vehicle", ego_xy, state="dynamic",
             type_id="vehicle.audi.a2", color="255,0,0", base_type="car", num_points=40, speed=hill.speed,
             brake=0.0, light_state="NONE"),
        _box("vehicle", "102", crossing, hill.rotation(90.0), [2.2, 0.9, 0.7], "world2vehicle", ego_xy,
             state="dynamic", type_id="vehicle.mini.cooper_s", color="0,255,0", base_type="car", num_points=25,
             speed=0.0, brake=1.0, light_state="NONE"),
        _box("vehicle", "103", overpass, rotation, [2.4, 1.0, 0.8], "world2vehicle", ego_xy, state="dynamic",
             type_id="vehicle.tesla.model3", color="0,0,255", base_type="car", num_points=0, speed=hill.speed,
             brake=0.0, light_state="NONE"),
        _box("vehicle", "104", far, rotation, [2.4, 1.0, 0.8], "world2vehicle", ego_xy, state="dynamic",
             type_id="vehicle.tesla.model3", color="9,9,9", base_type="car", num_points=3, speed=hill.speed,
             brake=0.0, light_state="NONE"),
        _box("traffic_light", "300", light, rotation, [0.3, 0.3, 2.0], None, ego_xy,
             type_id="traffic.traffic_light", state=2, affects_ego=True,
             trigger_volume_location=hill.world(38.0).tolist(), trigger_volume_rotation=rotation,
             trigger_volume_extent=[1.0, LANE_HALF_WIDTH, 1.0]),
    ]
    command = 4
    near, far_node = hill.world(along + 8.0), hill.world(along + 30.0)
    return {
        "x": float(ego_xy[0]), "y": float(ego_xy[1]), "throttle": 0.5, "steer": 0.0, "brake": 0.0, "reverse": False,
        "theta": float((math.radians(hill.yaw_deg) + math.pi / 2) % (2 * math.pi)), "speed": hill.speed,
        "x_command_far": float(far_node[0]), "y_command_far": float(far_node[1]), "command_far": command,
        "x_command_near": float(near[0]), "y_command_near": float(near[1]), "command_near": command,
        "should_brake": 0, "x_target": float(far_node[0]), "y_target": float(far_node[1]), "next_command": command,
        "weather": {"cloudiness": 10.0, "precipitation": 0.0, "precipitation_deposits": 0.0, "wetness": 0.0,
                    "wind_intensity": 5.0, "sun_azimuth_angle": 90.0, "sun_altitude_angle": 45.0, "fog_density": 0.0},
        "acceleration": [0.0, 0.0, 9.81], "angular_velocity": [0.0, 0.0, 0.0],
        "bounding_boxes": boxes, "sensors": _sensors(ego2world, rotation, width, height), "only_ap_brake": 0,
    }


def meta_action_answer(speed_token: str, path_token: str) -> str:
    return f"The car should be {speed_token} {path_token}"


def vqa_turns(meta_question: str = META_QUESTION, answer: str = "The car should be <speed_up> <lanefollow>"):
    def turn(question, reply):
        return [{"from": "human", "value": question}, {"from": "gpt", "value": reply}]

    return [turn("What can you tell about the current driving conditions from the images?",
                 "The ego vehicle drives uphill behind a red car."),
            turn("Where are the critical objects in the scene and what impact do they have on the ego vehicle?",
                 "A car 12 meters ahead in the same lane."),
            turn(meta_question, answer)]


def hd_map_roads(hill: Hill, trigger_key: str = "Trigger_Volumes") -> dict:
    """road_id -> road, as the map generator builds it: lane markings 0.5 m apart along the hill."""
    def marking(kind: str, lateral: float, junction: bool | None = None) -> dict:
        points = []
        for along in np.arange(-60.0, 120.01, 0.5):
            location = tuple(float(v) for v in hill.world(along, lateral))
            rotation = (hill.roll_deg, hill.slope_deg, hill.yaw_deg)   # (roll, pitch, yaw) as the generator
            points.append((location, rotation) if junction is None else (location, rotation, junction))
        entry = {"Points": points, "Type": kind, "Color": "White", "Topology": [(7, -1)]}
        if kind == "Center":
            entry.update(TopologyType="Normal", Left=(None, None), Right=(7, -2))
        return entry

    corners = [tuple(float(v) for v in hill.world(38.0 + dx, dy)) for dx, dy in ((-1, -1.75), (1, -1.75), (1, 1.75),
                                                                                 (-1, 1.75))]
    return {7: {-1: [marking("Solid", -LANE_HALF_WIDTH), marking("Broken", LANE_HALF_WIDTH),
                     marking("Center", 0.0, junction=False)],
                -2: [marking("SolidSolid", 3 * LANE_HALF_WIDTH)],
                trigger_key: [{"Points": corners, "Type": "TrafficLight",
                               "ParentActor_Location": tuple(float(v) for v in hill.world(40.0, 3.0))}]}}


def write_hd_map(path: Path, roads: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty((len(roads), 2), dtype=object)   # what np.array(list(d.items()), dtype=object) gives
    for i, (road_id, road) in enumerate(roads.items()):
        arr[i, 0], arr[i, 1] = road_id, road
    np.savez_compressed(path, arr=arr)


def write_clip(root: Path, hill: Hill | None = None, name: str = "HardBreakRoute_Town12_Route7_Weather3",
               frames: int = 12, width: int = 1600, height: int = 900, vqa_root: Path | None = None,
               map_root: Path | None = None, expert_action: int | None = 5) -> Path:
    """One clip under ``root/v1/<name>``; VQA for frames 0-2 (frame 1 asks its meta-action differently,
    frame 2 has no meta-action QA), none later; the town's map when ``map_root`` is given."""
    hill = hill or Hill()
    clip = root / "v1" / name
    (clip / "anno").mkdir(parents=True)
    for index, (name_, (folder, *_)) in enumerate(CAMERA_RIG.items()):
        (clip / "camera" / folder).mkdir(parents=True)
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[:] = (40 * index, 120, 200)
        image[height // 2:, :] = (90, 90, 90)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])
        assert ok
        for frame in range(frames):
            (clip / "camera" / folder / f"{frame:05d}.jpg").write_bytes(jpeg.tobytes())
    for frame in range(frames):
        with gzip.open(clip / "anno" / f"{frame:05d}.json.gz", "wt", encoding="utf-8") as handle:
            json.dump(annotation(hill, frame, width, height), handle, indent=4)
    if expert_action is not None:
        (clip / "expert_assessment").mkdir()
        for frame in range(frames):
            vector = np.concatenate([np.zeros(8, dtype=np.float32), [0.25], [float(expert_action)]]).astype(np.float32)
            np.savez(clip / "expert_assessment" / f"{str(frame - 1).zfill(5)}.npz", vector)
    if vqa_root is not None:
        folder = vqa_root / "train" / clip.name
        folder.mkdir(parents=True)
        (folder / "00000.json").write_text(json.dumps(vqa_turns()))
        (folder / "00001.json").write_text(json.dumps(vqa_turns("What should the ego vehicle do now?",
                                                                "The car should be <slow_down> <lanefollow>")))
        (folder / "00002.json").write_text(json.dumps(vqa_turns()[:2]))
    if map_root is not None:
        town = name.split("_")[1]
        write_hd_map(map_root / f"{town}_HD_map.npz", hd_map_roads(hill))
    return clip
