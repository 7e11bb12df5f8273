"""Multi-view image transforms, built from config (``dict(type=...)`` in ``TRANSFORMS``).

Each transform takes and returns a ``results`` dict holding ``img`` (list of N_cam HxWx3 arrays, RGB),
``cam_intrinsic`` (N,3,3), ``cam2ego`` (N,4,4), ``lidar2img`` (N,4,4) and ``rng`` (a per-sample
``numpy.random.Generator``, so augmentation depends only on (seed, epoch, index), never on the worker).
Geometric transforms keep the calibration consistent with the pixels they produce.
"""

from __future__ import annotations

import cv2
import numpy as np

from minddrive.data.bench2drive import ego2img
from minddrive.errors import UserError
from minddrive.registry import TRANSFORMS, build

# ImageNet statistics in 0..255 RGB (what the model's data_preprocessor uses by default).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _update_projection(results: dict) -> None:
    results["lidar2img"] = np.stack([ego2img(k.astype(np.float64), c.astype(np.float64))
                                     for k, c in zip(results["cam_intrinsic"], results["cam2ego"])]).astype(np.float32)


def _apply_affine_to_intrinsics(results: dict, affines: list[np.ndarray]) -> None:
    results["cam_intrinsic"] = np.stack([a @ k for a, k in zip(affines, results["cam_intrinsic"].astype(np.float64))]
                                        ).astype(np.float32)
    _update_projection(results)


@TRANSFORMS.register_module()
class LoadMultiViewImages:
    """Read the six camera JPEGs (``results["image_paths"]``) as RGB uint8.

    Images stored smaller than the calibration's ``image_size`` (e.g. downscaled copies) get their
    intrinsics rescaled to the pixels actually read.
    """

    def __call__(self, results: dict) -> dict:
        images, affines = [], []
        sizes = results.get("image_size")
        for i, path in enumerate(results["image_paths"]):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise UserError(f"{path}: camera image missing or unreadable (rerun prepare-data to re-index)")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            height, width = bgr.shape[:2]
            calib_w, calib_h = (sizes[i] if sizes is not None else (width, height))
            affines.append(np.diag([width / calib_w, height / calib_h, 1.0]))
        results["img"] = images
        if any(not np.allclose(a, np.eye(3)) for a in affines):
            _apply_affine_to_intrinsics(results, affines)
        return results


@TRANSFORMS.register_module()
class ResizeCropImages:
    """Scale then crop (or zero-pad) every view to ``size`` = (W, H), the network input.

    ``scale=None`` scales so the image covers the output; ``scale_range`` (training) multiplies that by a
    random factor per sample. ``crop`` picks which part is kept vertically: "bottom" (road and near field,
    the BEVDet-style choice) or "center".
    """

    def __init__(self, size: tuple[int, int], scale: float | None = None,
                 scale_range: tuple[float, float] | None = None, crop: str = "bottom"):
        if crop not in ("bottom", "center"):
            raise UserError(f"ResizeCropImages.crop: expected 'bottom' or 'center', got {crop!r}")
        self.size = (int(size[0]), int(size[1]))
        self.scale, self.scale_range, self.crop = scale, scale_range, crop

    def __call__(self, results: dict) -> dict:
        out_w, out_h = self.size
        factor = 1.0
        if self.scale_range is not None:
            factor = float(results["rng"].uniform(*self.scale_range))
        images, affines = [], []
        for img in results["img"]:
            h, w = img.shape[:2]
            s = (self.scale or max(out_w / w, out_h / h)) * factor
            rw, rh = max(1, int(round(w * s))), max(1, int(round(h * s)))
            # Area averaging only where linear sampling would alias (strong downscales); it is ~3x slower.
            interp = cv2.INTER_AREA if s < 0.5 else cv2.INTER_LINEAR
            resized = cv2.resize(img, (rw, rh), interpolation=interp)
            x0 = (rw - out_w) // 2
            y0 = rh - out_h if self.crop == "bottom" else (rh - out_h) // 2
            canvas = np.zeros((out_h, out_w, img.shape[2]), dtype=img.dtype)
            # Source window (may start before 0 or end after the image: then that part stays zero).
            sx0, sy0 = max(x0, 0), max(y0, 0)
            sx1, sy1 = min(x0 + out_w, rw), min(y0 + out_h, rh)
            canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = resized[sy0:sy1, sx0:sx1]
            images.append(canvas)
            affines.append(np.array([[rw / w, 0, -x0], [0, rh / h, -y0], [0, 0, 1]], dtype=np.float64))
        results["img"] = images
        _apply_affine_to_intrinsics(results, affines)
        return results


@TRANSFORMS.register_module()
class PhotoMetricDistortion:
    """Random brightness, contrast, saturation and hue per view (training only), each with ``prob``.

    The mmdet recipe (contrast before or after the colour changes, at random), computed on uint8 with
    lookup tables: about 5x faster than float arithmetic on six 640x640 views, so two loader workers
    keep a training step fed.
    """

    def __init__(self, brightness_delta: float = 32.0, contrast_range: tuple[float, float] = (0.5, 1.5),
                 saturation_range: tuple[float, float] = (0.5, 1.5), hue_delta: float = 18.0, prob: float = 0.5):
        self.brightness_delta, self.contrast_range = brightness_delta, contrast_range
        self.saturation_range, self.hue_delta, self.prob = saturation_range, hue_delta, prob

    def __call__(self, results: dict) -> dict:
        rng = results["rng"]
        levels = np.arange(256, dtype=np.float32)
        out = []
        for img in results["img"]:
            img = np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img
            brightness = rng.uniform(-self.brightness_delta, self.brightness_delta) if rng.random() < self.prob else 0.0
            contrast_first = rng.random() < 0.5
            contrast = rng.uniform(*self.contrast_range) if rng.random() < self.prob else 1.0
            saturation = rng.uniform(*self.saturation_range) if rng.random() < self.prob else 1.0
            hue = rng.uniform(-self.hue_delta, self.hue_delta) if rng.random() < self.prob else 0.0  # OpenCV units (0..180)
            first = np.clip(levels + brightness, 0, 255)
            if contrast_first:
                first = np.clip(first * contrast, 0, 255)
            img = cv2.LUT(img, first.astype(np.uint8))
            if saturation != 1.0 or hue != 0.0:
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
                hue_lut = np.mod(np.round(levels + hue), 180).astype(np.uint8)
                sat_lut = np.clip(levels * saturation, 0, 255).astype(np.uint8)
                hsv = cv2.merge([cv2.LUT(hsv[..., 0], hue_lut), cv2.LUT(hsv[..., 1], sat_lut), hsv[..., 2]])
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            if not contrast_first and contrast != 1.0:
                img = cv2.LUT(img, np.clip(levels * contrast, 0, 255).astype(np.uint8))
            out.append(img)
        results["img"] = out
        return results


@TRANSFORMS.register_module()
class NormalizeImages:
    """(img - mean) / std per channel. Not in the default pipelines: the batch contract carries 0..255
    images and the model normalises them (interfaces.py); use this only for a model without that step."""

    def __init__(self, mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, results: dict) -> dict:
        results["img"] = [(img.astype(np.float32) - self.mean) / self.std for img in results["img"]]
        return results


@TRANSFORMS.register_module()
class PackImages:
    """Stack the views into float32 (N_cam, 3, H, W), the batch contract's ``img``."""

    def __call__(self, results: dict) -> dict:
        shapes = {img.shape for img in results["img"]}
        if len(shapes) != 1:
            raise UserError(f"PackImages: views differ in size {sorted(shapes)}; put ResizeCropImages before it")
        # Transpose while still uint8 (a quarter of the bytes to shuffle), then convert.
        results["img"] = np.ascontiguousarray(np.stack(results["img"]).transpose(0, 3, 1, 2)).astype(np.float32)
        return results


class Compose:
    """Apply transforms built from a list of ``dict(type=...)`` configs, in order."""

    def __init__(self, pipeline: list):
        self.transforms = [t if callable(t) else build(t, TRANSFORMS, where=f"pipeline[{i}]")
                           for i, t in enumerate(pipeline or [])]

    def __call__(self, results: dict) -> dict:
        for transform in self.transforms:
            results = transform(results)
        return results
