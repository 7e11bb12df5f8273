"""Image transforms keep pixels and calibration consistent, and are deterministic per sample seed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from minddrive.data.bench2drive import rig_cam2ego, rig_intrinsic, ego2img
from minddrive.data.transforms import (Compose, LoadMultiViewImages, NormalizeImages, PackImages,
                                       PhotoMetricDistortion, ResizeCropImages)
from minddrive.constants import CAMERA_NAMES

CLIP = "v1/HardBreakRoute_Town01_Route30_Weather3"


def calibrated(width=1600, height=900, images=None, seed=0):
    k = np.stack([rig_intrinsic(c, width, height) for c in CAMERA_NAMES]).astype(np.float32)
    c2e = np.stack([rig_cam2ego(c) for c in CAMERA_NAMES]).astype(np.float32)
    l2i = np.stack([ego2img(a, b) for a, b in zip(k, c2e)]).astype(np.float32)
    return dict(img=images, cam_intrinsic=k, cam2ego=c2e, lidar2img=l2i, image_size=np.array([[width, height]] * 6),
                rng=np.random.default_rng(seed))


def project(l2i, point):
    u, v, d, _ = l2i @ np.append(point, 1.0)
    return np.array([u / d, v / d])


def test_load_reads_rgb_in_camera_order_and_rescales_intrinsics(b2d_root):
    results = calibrated()
    results["image_paths"] = [b2d_root / CLIP / "camera" / f"rgb_{c}" / "00000.jpg"
                              for c in ("front", "front_left", "front_right", "back", "back_left", "back_right")]
    results = LoadMultiViewImages()(results)
    for i, img in enumerate(results["img"]):
        assert img.shape == (18, 32, 3)
        np.testing.assert_allclose(img.reshape(-1, 3).mean(0), (10 * i + 5, 100, 200), atol=6)  # JPEG q20
    # Stored at 32x18 instead of 1600x900: intrinsics follow the pixels actually read.
    assert results["cam_intrinsic"][0][0, 2] == pytest.approx(16.0) and results["cam_intrinsic"][0][1, 2] == pytest.approx(9.0)
    np.testing.assert_allclose(project(results["lidar2img"][0], [10.8, 0, 1.6]), [16.0, 9.0], atol=1e-3)


def test_resize_crop_moves_projection_with_the_pixels():
    # A white dot where an ego point projects must stay where the updated lidar2img projects it.
    point = np.array([12.0, -1.5, 1.0])
    results = calibrated()
    images = []
    for l2i in results["lidar2img"]:
        img = np.zeros((900, 1600, 3), dtype=np.uint8)
        u, v = project(l2i, point)
        if 0 <= u < 1600 and 0 <= v < 900:
            img[int(v) - 6:int(v) + 7, int(u) - 6:int(u) + 7] = 255
        images.append(img)
    results["img"] = images
    out = ResizeCropImages(size=(640, 320), crop="bottom")(results)
    u, v = project(out["lidar2img"][0], point)
    ys, xs = np.nonzero(out["img"][0][..., 0] > 128)
    assert out["img"][0].shape == (320, 640, 3)
    assert abs(xs.mean() - u) < 1.5 and abs(ys.mean() - v) < 1.5
    assert out["cam_intrinsic"][0][0, 0] == pytest.approx(1142.518 * 0.4, rel=1e-4)  # scale 640/1600


def test_resize_pads_when_the_image_is_smaller_than_the_output():
    results = calibrated(160, 90, images=[np.full((90, 160, 3), 50, np.uint8)] * 6)
    out = ResizeCropImages(size=(160, 120), scale=1.0, crop="center")(results)
    img = out["img"][0]
    assert img.shape == (120, 160, 3) and img[:15].max() == 0 and img[15:105].min() == 50 and img[105:].max() == 0
    assert out["cam_intrinsic"][0][1, 2] == pytest.approx(45.0 + 15.0)


def test_photometric_distortion_is_a_function_of_the_sample_seed():
    base = [np.random.default_rng(1).integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(6)]
    run = lambda seed: PhotoMetricDistortion(prob=1.0)(calibrated(images=list(base), seed=seed))["img"]
    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.allclose(a[0], c[0])
    assert all(x.min() >= 0 and x.max() <= 255 for x in a)
    assert not np.allclose(a[0], base[0])


def test_pack_and_normalise():
    results = calibrated(images=[np.full((4, 8, 3), (123.675, 116.28, 103.53), np.float32)] * 6)
    packed = PackImages()(NormalizeImages()(results))["img"]
    assert packed.shape == (6, 3, 4, 8) and packed.dtype == np.float32
    np.testing.assert_allclose(packed, 0.0, atol=1e-5)


def test_real_size_pipeline_is_fast_enough():
    """1600x900 x 6 views -> 640x640 with photometric distortion: well under a CPU training step."""
    images = [np.random.default_rng(i).integers(0, 256, (900, 1600, 3), dtype=np.uint8) for i in range(6)]
    pipeline = Compose([dict(type="ResizeCropImages", size=(640, 640)), dict(type="PhotoMetricDistortion"),
                        dict(type="PackImages")])
    start = time.perf_counter()
    out = pipeline(calibrated(images=images))
    elapsed = time.perf_counter() - start
    assert out["img"].shape == (6, 3, 640, 640)
    assert elapsed < 2.0, f"{elapsed:.2f} s per sample"
