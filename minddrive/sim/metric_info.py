"""Per-route ``metric_info.json``: the file Bench2Drive's ``tools/efficiency_smoothness_benchmark.py`` reads.

One writer for the leaderboard agent, ``minddrive eval`` and ``minddrive sim-eval``. The file maps a
tick (JSON object keys, in tick order) to the leaderboard base class's ``get_metric_info()`` entry:
``acceleration`` and ``location`` ``[x, y, z]`` (m/s^2, m; CARLA's world frame), ``angular_velocity``
``[x, y, z]`` in deg/s (as ``Actor.get_angular_velocity``), ``forward_vector`` / ``right_vector`` (unit
vectors of the transform) and ``rotation`` ``[roll, pitch, yaw]`` in degrees. It lives in
``<folder>/<save_name>/metric_info.json``, the ``-m`` folder the tool joins with each record's
``save_name``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

METRIC_INFO_FILE = "metric_info.json"
METRIC_INFO_KEYS = ("acceleration", "angular_velocity", "forward_vector", "right_vector", "location", "rotation")


def metric_info_entry(x: float, y: float, yaw: float, acceleration: Sequence[float], yaw_rate: float,
                      z: float = 0.0) -> dict:
    """One tick's entry for a vehicle on flat ground at ``(x, y, z)`` heading ``yaw`` (rad, CARLA frame).

    ``acceleration``: world-frame ``[ax, ay]`` (m/s^2); ``yaw_rate``: rad/s, written in deg/s as CARLA does.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    return {
        "acceleration": [float(acceleration[0]), float(acceleration[1]), 0.0],
        "angular_velocity": [0.0, 0.0, math.degrees(float(yaw_rate))],
        "forward_vector": [c, s, 0.0],
        "right_vector": [-s, c, 0.0],        # CARLA's frame is left-handed: right of heading h is (-sin h, cos h)
        "location": [float(x), float(y), float(z)],
        "rotation": [0.0, 0.0, math.degrees(float(yaw))],
    }


def metric_info_from_trace(trace: Iterable[Sequence[float]]) -> dict[int, dict]:
    """Tick -> entry from rows ``(x, y, yaw, ax, ay, yaw_rate)``, one per simulator tick."""
    return {tick: metric_info_entry(row[0], row[1], row[2], row[3:5], row[5]) for tick, row in enumerate(trace)}


def write_metric_info(folder: str | os.PathLike, metric_info: Mapping[int, Mapping]) -> Path:
    """Write ``folder/metric_info.json`` (the folder is created); returns the file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / METRIC_INFO_FILE
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump({str(k): dict(v) for k, v in metric_info.items()}, f, indent=1)
    os.replace(tmp, path)
    return path


def read_metric_info(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The six series of a ``metric_info.json`` as (T, 3) arrays, in the file's tick order (as the tool reads it)."""
    with open(path) as f:
        data = json.load(f)
    return {key: np.array([entry[key] for entry in data.values()], dtype=np.float64).reshape(-1, 3)
            for key in METRIC_INFO_KEYS}


__all__ = ["METRIC_INFO_FILE", "METRIC_INFO_KEYS", "metric_info_entry", "metric_info_from_trace",
           "write_metric_info", "read_metric_info"]
