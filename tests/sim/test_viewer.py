"""Episode viewer (GIF/MP4) and the sim-data/sim-view argument handling."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
from PIL import Image

from minddrive.errors import UserError
from minddrive.sim.data_cli import parse_image_size
from minddrive.sim.viewer import render_episode, example_scene


def episode(n: int):
    frames = []
    scene = example_scene()
    for i in range(n):
        scene = copy.deepcopy(scene)
        scene.ego.x += 1.0
        scene.time = 0.1 * i
        frames.append(scene)
    frames[-1].plan = {"waypoints": np.array([[frames[-1].ego.x + 5.0, frames[-1].ego.y]])}
    return frames


def test_gif_has_one_frame_per_scene(tmp_path):
    out = render_episode(episode(5), tmp_path / "run.gif", fps=10, size_px=120)
    with Image.open(out) as gif:
        assert gif.n_frames == 5 and gif.size == (120, 120)
        assert gif.info["duration"] == 100
        gif.seek(4)
        last = np.array(gif.convert("RGB"))
    # the plan waypoint (5 m ahead, 60 m across 120 px -> 10 px above centre) is drawn yellow in the last frame
    assert tuple(last[50, 60]) == pytest.approx((255, 255, 0), abs=30)


def test_mp4_output(tmp_path):
    out = render_episode(episode(4), tmp_path / "run.mp4", fps=10, size_px=96)
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 4


def test_bad_outputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="gif or .mp4"):
        render_episode(episode(1), tmp_path / "run.png")
    with pytest.raises(UserError, match="no frames"):
        render_episode([], tmp_path / "run.gif")


def test_image_size_argument():
    assert parse_image_size("900x1600") == (900, 1600)
    assert parse_image_size("256X448") == (256, 448)
    with pytest.raises(UserError, match="--image-size"):
        parse_image_size("1600")
