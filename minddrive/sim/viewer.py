"""Episode viewer: animated BEV pictures (GIF via Pillow, MP4 via OpenCV) of a driven route.

``render_episode(frames, out_path)`` takes the :class:`Scene` snapshots of an episode, so any
policy (the expert, a constant controller, a learned model before/after RL) can be shown the same
way. :func:`example_scene` is a small hand-made junction used by tests, benchmarks and docs when no
simulator is at hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from minddrive.errors import UserError
from minddrive.sim.bev import render_bev
from minddrive.sim.scene import ActorState, LaneMarking, Scene, StopSign, TrafficLight
from minddrive.utils.io import atomic_path

VIDEO_SUFFIXES = (".gif", ".mp4")


def _caption(image: np.ndarray, scene: Scene, text: str | None) -> np.ndarray:
    lines = [f"t={scene.time:5.1f}s  v={scene.ego.speed * 3.6:4.1f} km/h"]
    if scene.scenario_type:
        lines.insert(0, scene.scenario_type)
    if text:
        lines.append(text)
    scale = image.shape[0] / 400.0
    for row, line in enumerate(lines):
        origin = (4, int((14 + 16 * row) * scale))
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def episode_frames(frames: Sequence[Scene], size_px: int = 400, metres: float = 60.0,
                   captions: Sequence[str] | None = None) -> list[np.ndarray]:
    """BEV RGB pictures of ``frames`` with a short caption (scenario, time, speed, optional text)."""
    pictures = []
    for i, scene in enumerate(frames):
        text = captions[i] if captions is not None and i < len(captions) else None
        pictures.append(_caption(render_bev(scene, size_px=size_px, metres=metres), scene, text))
    return pictures


def write_animation(pictures: Sequence[np.ndarray], out_path: str | os.PathLike, fps: float = 10.0) -> Path:
    """Write RGB ``pictures`` as an animated GIF or an MP4 (by suffix), atomically."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{out_path}: expected a .gif or .mp4 output path")
    if not pictures:
        raise UserError(f"{out_path}: no frames to write (the episode is empty)")
    with atomic_path(out_path) as tmp:
        if suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(np.ascontiguousarray(p)) for p in pictures]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=int(round(1000.0 / fps)), loop=0, optimize=False)
        else:
            height, width = pictures[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
            if not writer.isOpened():
                raise UserError(f"{out_path}: OpenCV cannot open an MP4 writer here; use a .gif path")
            for picture in pictures:
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            writer.release()
    return out_path


def render_episode(frames: Sequence[Scene], out_path: str | os.PathLike, fps: float = 10.0, size_px: int = 400,
                   metres: float = 60.0, captions: Sequence[str] | None = None) -> Path:
    """Animate an episode's snapshots (route, actors, lights, ``scene.plan``) to ``out_path`` (.gif/.mp4)."""
    return write_animation(episode_frames(frames, size_px, metres, captions), out_path, fps)


def example_scene(ego_speed: float = 8.0, light_state: int = 0) -> Scene:
    """A hand-made four-way junction: ego heading east on a two-lane road, a lead car, a walker,
    a cone, a traffic light guarding the junction and a stop sign on the side road."""
    xs = np.linspace(-60.0, 60.0, 61)
    east = np.stack([xs, np.full_like(xs, 1.75)], axis=1)     # ego lane (y south = right of travel)
    west = np.stack([xs[::-1], np.full_like(xs, -1.75)], axis=1)
    south = np.stack([np.full_like(xs, -1.75), xs], axis=1)
    north = np.stack([np.full_like(xs, 1.75), xs[::-1]], axis=1)
    markings = [
        LaneMarking(np.stack([xs, np.zeros_like(xs)], axis=1), "Center", "Yellow"),
        LaneMarking(np.stack([xs, np.full_like(xs, 3.5)], axis=1), "Solid", "White"),
        LaneMarking(np.stack([xs, np.full_like(xs, -3.5)], axis=1), "Solid", "White"),
        LaneMarking(np.stack([np.zeros_like(xs), xs], axis=1), "Broken", "White"),
    ]
    edges = [np.stack([xs, np.full_like(xs, 3.6)], axis=1), np.stack([xs, np.full_like(xs, -3.6)], axis=1)]
    ego = ActorState(0, "ego", "vehicle.lincoln.mkz_2020", -20.0, 1.75, 0.0, ego_speed, (2.44, 1.06, 0.76))
    actors = [
        ActorState(11, "vehicle", "vehicle.audi.a2", -8.0, 1.75, 0.0, 6.0, (1.85, 0.9, 0.77)),
        ActorState(12, "vehicle", "vehicle.tesla.model3", 10.0, -1.75, np.pi, 7.0, (2.4, 1.08, 0.74)),
        ActorState(21, "walker", "walker.pedestrian.0001", -12.0, 5.0, np.pi / 2, 1.2, (0.25, 0.25, 0.9)),
        ActorState(31, "prop", "static.prop.constructioncone", -14.0, 3.2, 0.0, 0.0, (0.2, 0.2, 0.4)),
    ]
    light = TrafficLight(41, -4.5, 4.5, light_state, np.array([[-4.0, 0.2], [-4.0, 3.4]]), affects_ego=True)
    stop = StopSign(51, 4.5, 6.0, np.array([[0.2, 4.0], [3.4, 4.0]]))
    route = np.stack([np.linspace(-40.0, 60.0, 51), np.full(51, 1.75)], axis=1)
    return Scene(time=0.0, town="Town01", ego=ego, actors=actors, lane_markings=markings, road_edges=edges,
                 lane_centers=[east, west, south, north], traffic_lights=[light], stop_signs=[stop], route=route,
                 route_progress_index=10, command=0, road_option=4, target_point=np.array([0.0, 1.75]),
                 control=(0.0, 0.3, 0.0), scenario_type="SignalizedJunctionLeftTurn", weather_id=1)


__all__ = ["render_episode", "episode_frames", "write_animation", "example_scene"]
