"""A clip written by the embedded simulator's writer loads with the same code to the same structures."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from minddrive.data.infos import build_info_index, load_info_index
from minddrive.data.sim_vqa import frame_vqa


class ConstantThrottle:
    """Drives straight on; stands in for the expert (the loader, not the driving, is under test)."""

    last_meta_action = (3, 0)  # speed up, lanefollow: must come back as the VQA label

    def act(self):
        return np.array([0.0, 0.6, 0.0])


@pytest.fixture(scope="module")
def sim_clip(tmp_path_factory):
    writer = pytest.importorskip("minddrive.sim.writer", reason="minddrive/sim/writer.py not written yet")
    from minddrive.registry import ENVS, build

    root = tmp_path_factory.mktemp("sim")
    env = build(dict(type="EmbeddedDriveEnv"), ENVS, where="env")
    clip = writer.write_clip(env, ConstantThrottle(), root / "v1", seed=3, image_size=(36, 64),
                             vqa_root=root / "vqa", max_frames=12, frame_vqa=frame_vqa)
    build_info_index(root, None, root / "infos", vqa_root=str(root / "vqa"), progress=False, log=lambda *_: None)
    return clip, load_info_index(root / "infos" / "b2d_infos_train.pkl")[0]


def test_same_structures_as_a_real_format_clip(sim_clip, train_infos):
    _, infos = sim_clip
    assert [i["frame"] for i in infos] == list(range(12))
    real = train_infos[0]
    for key, value in real.items():
        got = infos[0][key]
        assert type(got) is type(value) or (value is None or got is None), key
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype, key
            if key not in ("agent_boxes", "agent_mask", "map_boundaries", "map_mask"):
                assert got.shape == value.shape, key
    assert (infos[0]["speed_action"], infos[0]["path_action"], infos[0]["label_source"]) == (3, 0, "vqa")
    np.testing.assert_array_equal(infos[0]["image_size"], [[64, 36]] * 6)


def test_waypoints_agree_with_the_gnss_fields(sim_clip):
    # Independent route to the same number: the writer's x, y, theta (GT here), the ego's height and pitch vs
    # the loader's world2ego path. The clip stands on the town's terrain: a height and a slope.
    clip, infos = sim_clip
    anno = [json.load(gzip.open(clip / "anno" / f"{f:05d}.json.gz")) for f in (0, 5)]
    ego = [a["bounding_boxes"][0] for a in anno]
    assert ego[0]["location"][2] > 10.0 and abs(ego[0]["rotation"][0]) > 0.05   # metres up, pitched
    yaw, pitch = anno[0]["theta"] - math.pi / 2, math.radians(ego[0]["rotation"][0])
    step = np.array([anno[1]["x"] - anno[0]["x"], anno[1]["y"] - anno[0]["y"], ego[1]["location"][2] - ego[0]["location"][2]])
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    assert infos[0]["ego_fut_traj"][0][0] == pytest.approx(float(step @ forward), abs=2e-3)
    assert abs(infos[0]["ego_fut_traj"][0][1]) < 0.05
    assert infos[0]["ego_fut_traj"][0][0] > 1.0  # it drove forward
    np.testing.assert_array_equal(infos[0]["ego_fut_mask"], [1, 1, 0, 0, 0, 0])
