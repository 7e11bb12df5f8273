"""Bench2Drive-layout clip writer and Chat-B2D VQA, driven by a tiny scripted env (no simulator core needed)."""

from __future__ import annotations

import gzip
import json
import math

import cv2
import numpy as np
import pytest

from minddrive.constants import CAMERA_FOLDERS, CAMERA_NAMES
from minddrive.data.sim_vqa import frame_vqa
from minddrive.sim.viewer import example_scene
from minddrive.sim.writer import frame_annotation, write_clip

TOP_KEYS = ("x", "y", "theta", "speed", "throttle", "steer", "brake", "reverse", "x_command_near", "y_command_near",
            "command_near", "x_command_far", "y_command_far", "command_far", "x_target", "y_target", "next_command",
            "should_brake", "only_ap_brake", "weather", "acceleration", "angular_velocity", "bounding_boxes", "sensors")
CAMERA_KEYS = ("location", "rotation", "intrinsic", "world2cam", "cam2ego", "fov", "image_size_x", "image_size_y")


class ScriptedEnv:
    """Drives ``example_scene`` east at its speed for ``ticks`` steps of 0.05 s (so the writer must subsample)."""

    dt = 0.05

    def __init__(self, ticks: int = 8):
        self.ticks = ticks

    def reset(self, seed=None, options=None):
        self.scene, self.t = example_scene(), 0
        self.scene.ego.yaw = math.radians(30.0)   # not axis-aligned, so frame conversions are really exercised
        return {}, {}

    def snapshot(self):
        return self.scene

    def step(self, control):
        self.t += 1
        ego = self.scene.ego
        ego.x += ego.speed * self.dt * math.cos(ego.yaw)
        ego.y += ego.speed * self.dt * math.sin(ego.yaw)
        self.scene.time += self.dt
        return {}, 0.0, self.t >= self.ticks, False, {}

    def close(self):
        pass


class ScriptedExpert:
    last_meta_action = (4, 0)   # slow down, lane follow

    def act(self):
        return np.array([0.1, 0.0, 0.6])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("b2d")
    path = write_clip(ScriptedEnv(), ScriptedExpert(), root / "v1", seed=7, image_size=(90, 160),
                      vqa_root=root / "vqa", split="val", frame_vqa=frame_vqa)
    return root, path


def read_anno(path):
    with gzip.open(path, "rt") as handle:
        return json.load(handle)


def test_clip_layout_and_10hz(clip):
    root, path = clip
    assert path.name == "SignalizedJunctionLeftTurn_Town01_Route7_Weather1"
    frames = sorted(p.name for p in (path / "anno").iterdir())
    assert frames == ["00000.json.gz", "00001.json.gz", "00002.json.gz", "00003.json.gz"]  # 8 ticks of 0.05 s
    for folder in CAMERA_FOLDERS:
        image = cv2.imread(str(path / "camera" / folder / "00002.jpg"))
        assert image.shape == (90, 160, 3)
    assert not list((root / "v1").glob(".*partial"))


def test_annotation_keys_types_and_values(clip):
    _, path = clip
    first, second = read_anno(path / "anno" / "00000.json.gz"), read_anno(path / "anno" / "00001.json.gz")
    assert tuple(first) == TOP_KEYS
    assert isinstance(first["x"], float) and isinstance(first["reverse"], bool)
    assert isinstance(first["command_near"], int) and isinstance(first["should_brake"], int)
    assert first["theta"] == pytest.approx(math.radians(30.0) + math.pi / 2)       # compass = yaw + 90 deg
    assert (first["steer"], first["brake"], first["should_brake"]) == (0.1, 0.6, 1)
    # 0.1 s apart at 8 m/s along a 30 deg heading
    assert second["x"] - first["x"] == pytest.approx(0.8 * math.cos(math.radians(30)), abs=1e-6)
    boxes = first["bounding_boxes"]
    ego = boxes[0]
    # The town's terrain: metres up, and at rest the accelerometer reads g along the pitched, rolled body z.
    pitch, roll = (math.radians(a) for a in ego["rotation"][:2])
    assert ego["location"][2] > 10.0 and 0.0 < math.hypot(pitch, roll) < math.radians(8.0)
    assert first["acceleration"][2] == pytest.approx(9.81 * math.cos(pitch) * math.cos(roll))
    assert ego["class"] == "ego_vehicle" and ego["id"] == "0" and ego["semantic_tags"] == [[14]]
    world2ego = np.array(ego["world2ego"])
    assert np.allclose(world2ego @ [*ego["location"], 1.0], [0, 0, 0, 1], atol=1e-9)
    assert {b["class"] for b in boxes} == {"ego_vehicle", "vehicle", "walker", "traffic_sign", "traffic_light"}
    lead = next(b for b in boxes if b["id"] == "11")
    assert lead["rotation"][2] == pytest.approx(0.0) and lead["state"] == "dynamic" and lead["speed"] == 6.0
    assert lead["location"][:2] == pytest.approx([-8.0, 1.75])
    corners = np.array(lead["world_cord"])
    assert corners.shape == (8, 3)
    local = np.array(lead["world2vehicle"]) @ [*corners[0], 1.0]
    assert np.allclose(local[:3], [1.85, 0.9, 2 * 0.77])    # +x +y +z first
    assert np.allclose(corners.mean(axis=0), lead["center"])
    light = next(b for b in boxes if b["class"] == "traffic_light")
    assert light["state"] == 0 and light["affects_ego"] is True


def test_sensor_entries_project_like_bench2drive(clip):
    _, path = clip
    anno = read_anno(path / "anno" / "00000.json.gz")
    assert set(CAMERA_NAMES) <= set(anno["sensors"]) and "LIDAR_TOP" in anno["sensors"]
    front = anno["sensors"]["CAM_FRONT"]
    assert tuple(front) == CAMERA_KEYS and (front["image_size_x"], front["image_size_y"]) == (160, 90)
    # A world point 10 m in front of the front camera's lens at lens height lands on the image centre,
    # following the official get_image_point: world2cam, (y, -z, x), K, divide.
    cam2world = np.linalg.inv(np.array(front["world2cam"]))
    lens = np.array(front["location"])
    assert np.allclose(cam2world[:3, 3], lens)
    point = lens + 10.0 * cam2world[:3, 0]     # along the optical axis (pitched with the car on a slope)
    cam = np.array(front["world2cam"]) @ [*point, 1.0]
    pixel = np.array(front["intrinsic"]) @ [cam[1], -cam[2], cam[0]]
    assert pixel[:2] / pixel[2] == pytest.approx([80.0, 45.0], abs=1e-6)
    assert front["rotation"][2] == pytest.approx(30.0)


def test_vqa_files(clip):
    root, path = clip
    files = sorted((root / "vqa" / "val" / path.name).iterdir())
    assert [f.name for f in files] == ["00000.json", "00001.json", "00002.json", "00003.json"]
    turns = json.loads(files[0].read_text())
    assert len(turns) == 4
    for turn in turns:
        assert [t["from"] for t in turn] == ["human", "gpt"] and all(isinstance(t["value"], str) for t in turn)
    # Chat-B2D-plus: the meta-action QA is the last pair; upstream splits its answer on spaces.
    decision = turns[-1]
    assert decision[0]["value"] == "What actions should the car be taking?"
    assert decision[1]["value"] == "The car should be <slow_down> <lanefollow>"
    assert decision[1]["value"].split(" ")[-2:] == ["<slow_down>", "<lanefollow>"]
    critical = turns[1][1]["value"]
    # walker at world (-12, 5), ego at (-20, 1.75) heading 30 deg: ego frame (8.55, -1.19)
    assert "A pedestrian at (8.6, -1.2) meters, ahead in our lane" in critical
    assert critical.startswith("An obstacle at")
    # deterministic for a seed: rewriting the same frame gives identical text
    assert json.loads(files[0].read_text()) == turns


def test_rerun_skips_a_finished_clip(clip):
    root, path = clip
    stamp = (path / "anno" / "00000.json.gz").stat().st_mtime_ns
    again = write_clip(ScriptedEnv(), ScriptedExpert(), root / "v1", seed=7, image_size=(90, 160))
    assert again == path and (path / "anno" / "00000.json.gz").stat().st_mtime_ns == stamp


def test_far_actors_are_not_annotated():
    scene = example_scene()
    scene.actors[0].x = scene.ego.x + 150.0
    ids = [b["id"] for b in frame_annotation(scene, (90, 160))["bounding_boxes"]]
    assert "11" not in ids and "12" in ids
