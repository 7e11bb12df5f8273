"""A clip in the collector's own format, on a hill (tests/data/b2d_format.py), read by prepare-data and the dataset.

The hill is a 5-degree slope at 30 m altitude heading 30 degrees: every number below is metres along or
across the road, the ego frame of the truth.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import b2d_format  # noqa: E402

from minddrive.cli import main  # noqa: E402
from minddrive.data import bench2drive as b2d  # noqa: E402
from minddrive.data.infos import build_info_index, load_info_index  # noqa: E402

CLIP = "HardBreakRoute_Town12_Route7_Weather3"


@pytest.fixture(scope="module")
def hill_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hill")
    b2d_format.write_clip(root, b2d_format.Hill(), CLIP, frames=12, vqa_root=root / "vqa", map_root=root / "maps")
    return root


@pytest.fixture(scope="module")
def hill_index(hill_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("hill_infos")
    lines = []
    summary = build_info_index(hill_root, None, out, vqa_root=str(hill_root / "vqa"), map_root=str(hill_root / "maps"),
                               workers=0, progress=False, log=lines.append)
    infos, metadata = load_info_index(out / "b2d_infos_train.pkl")
    return dict(out=out, summary=summary, infos=infos, metadata=metadata, log=lines)


def test_the_shipped_map_array_is_an_n_by_2_object_array(hill_root):
    with np.load(hill_root / "maps" / "Town12_HD_map.npz", allow_pickle=True) as data:
        arr = data["arr"]
    assert arr.shape == (1, 2) and arr.dtype == object and not hasattr(arr, "values")
    boundaries = b2d.load_hd_map_boundaries(hill_root / "maps" / "Town12_HD_map.npz")
    assert len(boundaries) == 2 and all(p.shape[1] == 3 for p in boundaries)   # Solid and SolidSolid, with z


@pytest.mark.parametrize("key", b2d.TRIGGER_VOLUME_KEYS)
def test_trigger_volumes_under_both_spellings(tmp_path, key):
    hill = b2d_format.Hill()
    b2d_format.write_hd_map(tmp_path / "Town12_HD_map.npz", b2d_format.hd_map_roads(hill, trigger_key=key))
    (volume,) = b2d.load_hd_map_trigger_volumes(tmp_path / "Town12_HD_map.npz")
    assert volume["type"] == "TrafficLight" and volume["points"].shape == (4, 3)
    np.testing.assert_allclose(volume["parent"], hill.world(40.0, 3.0))
    assert len(b2d.load_hd_map_boundaries(tmp_path / "Town12_HD_map.npz")) == 2   # the key is no lane


def test_a_zero_d_dict_map_reads_the_same(tmp_path, hill_root):
    roads = b2d_format.hd_map_roads(b2d_format.Hill())
    np.savez(tmp_path / "Town12_HD_map.npz", arr=np.array(roads, dtype=object))
    for got, want in zip(b2d.load_hd_map_boundaries(tmp_path / "Town12_HD_map.npz"),
                         b2d.load_hd_map_boundaries(hill_root / "maps" / "Town12_HD_map.npz")):
        np.testing.assert_array_equal(got, want)


def test_first_future_waypoint_on_a_slope_is_the_distance_driven(hill_index):
    # 5 m/s for 0.5 s up a 5-degree slope at 30 m: 2.5 m straight ahead (a 2-D transform read -0.17 m).
    first = hill_index["infos"][0]
    np.testing.assert_allclose(first["ego_fut_traj"][0], [2.5, 0.0], atol=1e-4)
    np.testing.assert_allclose(first["ego_fut_traj"][1], [5.0, 0.0], atol=1e-4)
    np.testing.assert_array_equal(first["ego_fut_mask"], [1, 1, 0, 0, 0, 0])
    later = hill_index["infos"][10]
    np.testing.assert_allclose(later["ego_history"][:2], [[-2.5, 0.0], [-5.0, 0.0]], atol=1e-4)
    # Path points along the driven path, 2-D route targets on the ego's ground plane: 30 m ahead, on the axis.
    assert np.abs(first["path_points"][first["path_mask"] > 0][:, 1]).max() < 1e-4
    np.testing.assert_allclose(first["target_point"], [30.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(first["route"][:, 1], 0.0, atol=1e-3)


def test_agents_as_zoo_keeps_boxes(hill_index):
    first = hill_index["infos"][0]
    boxes, mask = first["agent_boxes"], first["agent_mask"]
    # The car ahead and the crossing car; not the one on the bridge above (dz 15 m) nor the one 80 m ahead.
    assert boxes.shape[0] == 2
    np.testing.assert_allclose(boxes[0, 0], [12.0 + 2.5, 0.0, 4.8, 2.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(boxes[1, 0], [20.0 + 2.5, 3.5, 4.4, 1.8, math.pi / 2], atol=1e-3)
    np.testing.assert_array_equal(mask[:, :2], 1.0)


def test_road_boundaries_from_the_shipped_map(hill_index):
    first = hill_index["infos"][0]
    points = first["map_boundaries"][first["map_mask"] > 0]
    lateral = np.unique(np.round(points[:, 1], 3))
    np.testing.assert_allclose(lateral, [-1.75, 5.25], atol=1e-3)  # the Solid left edge and the SolidSolid
    assert np.abs(points[:, 0]).max() <= 30.0 + 1e-3


def test_label_provenance_is_counted_per_split(hill_index, hill_root, tmp_path):
    infos = hill_index["infos"]
    sources = [i["label_source"] for i in infos]
    # Frames 0 and 1 carry a meta-action QA as the last pair (frame 1 with another question); frame 2's file
    # has none; 3-6 have no file; 7-11 have no frame 0.5 s later to derive a speed change from.
    assert sources == ["vqa", "vqa"] + ["derived"] * 5 + ["missing"] * 5
    assert [(i["speed_action"], i["path_action"]) for i in infos[:2]] == [(3, 0), (4, 0)]
    assert hill_index["summary"]["labels"] == {"train": {"vqa": 2, "derived": 5, "missing": 5},
                                               "val": {"vqa": 0, "derived": 0, "missing": 0}}
    assert "train meta-action labels (last QA pair): 2 vqa, 5 derived, 5 missing" in hill_index["log"]
    by_question = build_info_index(hill_root, None, tmp_path, vqa_root=str(hill_root / "vqa"), workers=0,
                                   progress=False, log=lambda *_: None, label_rule="question")
    assert by_question["labels"]["train"] == {"vqa": 1, "derived": 6, "missing": 5}


def test_controls_from_expert_assessment(hill_index, hill_root, tmp_path):
    from minddrive.constants import EGO_STATE_FIELDS

    def controls(infos):
        return [tuple(float(i["ego_state"][EGO_STATE_FIELDS.index(k)]) for k in ("throttle", "steer", "brake"))
                for i in infos[:2]]

    assert controls(hill_index["infos"]) == [(pytest.approx(0.7), 0.0, 0.0)] * 2   # action 5; the anno says 0.5
    assert hill_index["infos"][0]["control_source"] == "expert"
    build_info_index(hill_root, None, tmp_path, workers=0, progress=False, log=lambda *_: None, controls="anno")
    anno = load_info_index(tmp_path / "b2d_infos_train.pkl")[0]
    assert controls(anno) == [(0.5, 0.0, 0.0)] * 2 and anno[0]["control_source"] == "anno"


def test_world_point_through_world2cam_lands_on_the_lidar2img_pixel(hill_root, hill_index):
    anno = b2d.read_annotation(hill_root / "v1" / CLIP / "anno" / "00004.json.gz")
    info = hill_index["infos"][4]
    world2ego = b2d.ego_world2ego(anno)
    checked = 0
    for index, camera in enumerate(b2d.CAMERA_NAMES):
        entry = anno["sensors"][camera]
        for box in anno["bounding_boxes"][1:]:
            point = np.array([*box["center"], 1.0])
            cam = np.array(entry["world2cam"]) @ point            # UE axes: x forward, y right, z up
            if cam[0] <= 0.5:
                continue
            pixel = np.array(entry["intrinsic"]) @ [cam[1], -cam[2], cam[0]]
            projected = info["lidar2img"][index].astype(np.float64) @ world2ego @ point
            np.testing.assert_allclose(projected[:2] / projected[2], pixel[:2] / pixel[2], atol=0.05)
            checked += 1
    assert checked >= 4
    np.testing.assert_array_equal(info["image_size"], [[1600, 900]] * 6)


def test_nan_and_none_sensor_fields_fall_back_to_the_rig():
    anno = b2d_format.annotation(b2d_format.Hill(), 0, 1600, 900)
    want = b2d.camera_calibration(anno)
    anno["sensors"]["CAM_BACK"]["intrinsic"] = None
    anno["sensors"]["CAM_BACK"]["cam2ego"] = [[float("nan")] * 4] * 4
    anno["sensors"]["CAM_FRONT"]["image_size_x"] = None
    got = b2d.camera_calibration(anno)
    for key in ("intrinsic", "cam2ego", "lidar2img", "image_size"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-3)


def test_prepare_data_cli_on_the_shipped_formats(hill_root, tmp_path, capsys):
    rc = main(["prepare-data", "--root", str(hill_root), "--out", str(tmp_path), "--vqa-root", str(hill_root / "vqa"),
               "--map-root", str(hill_root / "maps"), "--workers", "0", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "train meta-action labels (last QA pair): 2 vqa, 5 derived, 5 missing" in out
    assert "val meta-action labels (last QA pair): 0 vqa, 0 derived, 0 missing" in out


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_the_dataset_reads_the_clip_at_every_stage(hill_index, hill_root, stage):
    from minddrive.registry import DATASETS, build

    dataset = build(dict(type="Bench2DriveDataset", ann_file=str(hill_index["out"] / "b2d_infos_train.pkl"),
                         stage=stage, pipeline=[dict(type="LoadMultiViewImages"),
                                                dict(type="ResizeCropImages", size=(64, 36)),
                                                dict(type="PackImages")], tokenizer="tiny"), DATASETS)
    assert len(dataset) == (3 if stage == 1 else 12)
    sample = dataset[0]
    assert sample["img"].shape == (6, 3, 36, 64)
    # The 1600x900 calibration scaled to 64x36: the front camera's principal point is the image centre.
    assert sample["cam_intrinsic"][0][0, 2] == pytest.approx(32.0, abs=0.5)
    assert (sample["labels"] != -100).any()
    if stage == 1:
        text_ids = sample["input_ids"].tolist()
        assert not any(t in text_ids for t in dataset.tokenizer.convert_tokens_to_ids(["<speed_up>", "<slow_down>"]))
