"""Route geometry for the CARLA backend: the densified leaderboard route and where the ego is along it."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from minddrive.constants import COMMAND_LOOKAHEAD, ROAD_OPTION
from minddrive.errors import UserError
from minddrive.sim.base import KEY_POINT_SPACING, ROUTE_NODES, TARGET_MIN_DISTANCE

COMPLETION_DONE_PERCENT, COMPLETION_DONE_DIST = 99.0, 10.0


@dataclass
class DenseRoute:
    """The route the leaderboard drives: keypoints densified to ~1 m hops, one RoadOption per point."""

    points: np.ndarray                 # (N, 3) world x, y, z
    options: np.ndarray                # (N,) int CARLA RoadOption values
    cumulative: np.ndarray = field(init=False)  # (N,) metres along the route at each point

    def __post_init__(self) -> None:
        steps = np.linalg.norm(np.diff(self.points[:, :2], axis=0), axis=1)
        self.cumulative = np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        return float(self.cumulative[-1])


def densify_route(keypoints: np.ndarray, trace: Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, int]]]
                  ) -> DenseRoute:
    """The leaderboard's ``interpolate_trajectory``: trace each consecutive keypoint pair, concatenate.

    ``trace(a, b)`` returns ``[(xyz, road_option), ...]`` from a to b -- CARLA's
    ``GlobalRoutePlanner.trace_route`` with hop 1.0 m on a server (see :func:`carla_tracer`).
    """
    points, options = [], []
    for a, b in zip(keypoints[:-1], keypoints[1:]):
        for xyz, option in trace(np.asarray(a, dtype=float), np.asarray(b, dtype=float)):
            if points and np.linalg.norm(np.asarray(xyz)[:2] - points[-1][:2]) < 1e-3:
                continue                     # the segment joint appears twice
            points.append(np.asarray(xyz, dtype=float))
            options.append(int(option))
    if len(points) < 2:
        raise UserError("route: densified route has fewer than 2 points (keypoints too close or unreachable)")
    return DenseRoute(np.stack(points), np.asarray(options, dtype=np.int64))


def straight_tracer(hop: float = 1.0) -> Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, int]]]:
    """A map-free tracer (straight segments, LANEFOLLOW): for tests and maps without a planner."""
    def trace(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, int]]:
        n = max(int(math.ceil(np.linalg.norm(b[:2] - a[:2]) / hop)), 1)
        return [(a + (b - a) * i / n, ROAD_OPTION["LANEFOLLOW"]) for i in range(n + 1)]
    return trace


def densify_thinned_plan(points: np.ndarray, options: np.ndarray, hop: float = 1.0) -> DenseRoute:
    """A ~``hop`` m route from a thinned plan (the leaderboard keeps a point at every option change and at
    least every 50 m): straight legs between kept points, each leg carrying its first point's option."""
    points, options = np.asarray(points, dtype=float), np.asarray(options, dtype=np.int64)
    if len(points) < 2:
        raise UserError("route: the global plan has fewer than 2 points")
    out_points, out_options = [], []
    for a, b, option in zip(points[:-1], points[1:], options[:-1]):
        n = max(int(math.ceil(np.linalg.norm(b[:2] - a[:2]) / hop)), 1)
        out_points += [a + (b - a) * i / n for i in range(n)]
        out_options += [int(option)] * n
    out_points.append(points[-1])
    out_options.append(int(options[-1]))
    return DenseRoute(np.stack(out_points), np.asarray(out_options, dtype=np.int64))


def to_ego_frame(points: np.ndarray, x: float, y: float, yaw: float) -> np.ndarray:
    """World (N, 2) -> ego frame (x forward, y right) of a vehicle at (x, y) with ``yaw`` (rad, CARLA)."""
    c, s = math.cos(yaw), math.sin(yaw)
    d = np.asarray(points, dtype=np.float64)[:, :2] - np.array([x, y])
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], axis=1)


class RouteTracker:
    """Where the ego is along the route: completion, command, target point, route ahead.

    The projection only moves forward within a window of points, as the leaderboard's
    ``RouteCompletionTest``, so a route crossing itself does not jump.
    """

    def __init__(self, route: DenseRoute, window: int = 50):
        self.route = route
        self.window = window
        self.index = 0

    def update(self, x: float, y: float) -> int:
        hi = min(self.index + self.window, len(self.route.points))
        d = np.linalg.norm(self.route.points[self.index:hi, :2] - np.array([x, y]), axis=1)
        self.index += int(np.argmin(d))
        return self.index

    def distance_to_route(self, x: float, y: float) -> float:
        """Distance to the nearest route point anywhere (InRouteTest)."""
        return float(np.min(np.linalg.norm(self.route.points[:, :2] - np.array([x, y]), axis=1)))

    def completion(self, x: float, y: float) -> float:
        """Route completion in percent (100 once > 99 % and within 10 m of the end)."""
        percent = 100.0 * self.route.cumulative[self.index] / max(self.route.length, 1e-6)
        near_end = np.linalg.norm(self.route.points[-1, :2] - np.array([x, y])) < COMPLETION_DONE_DIST
        return 100.0 if percent > COMPLETION_DONE_PERCENT and near_end else round(percent, 2)

    def road_option(self, lookahead: float = COMMAND_LOOKAHEAD) -> int:
        """The first non-lane-follow RoadOption within ``lookahead`` m ahead, else LANEFOLLOW."""
        ahead = self.route.cumulative <= self.route.cumulative[self.index] + lookahead
        for option in self.route.options[self.index:][ahead[self.index:]]:
            if option not in (ROAD_OPTION["LANEFOLLOW"], ROAD_OPTION["VOID"]):
                return int(option)
        return ROAD_OPTION["LANEFOLLOW"]

    def _point_at(self, distance: float) -> np.ndarray:
        d = np.clip(distance, 0.0, self.route.length)
        return np.stack([np.interp(d, self.route.cumulative, self.route.points[:, k]) for k in range(2)], axis=-1)

    @functools.cached_property
    def node_distances(self) -> np.ndarray:
        """Arc lengths of the navigation target points: every KEY_POINT_SPACING m, every command change, the end
        (the embedded simulator's rule, so both backends hand the policy the same kind of targets)."""
        cumulative, options = self.route.cumulative, np.asarray(self.route.options)
        changes = cumulative[np.nonzero(np.diff(options) != 0)[0] + 1]
        return np.unique(np.concatenate([np.arange(KEY_POINT_SPACING, self.route.length, KEY_POINT_SPACING),
                                         changes, [self.route.length]]))

    def nodes_ahead(self, count: int = ROUTE_NODES) -> np.ndarray:
        """World (<= count, 2) target points more than TARGET_MIN_DISTANCE m past the ego's projection."""
        ahead = self.node_distances[self.node_distances > self.route.cumulative[self.index] + TARGET_MIN_DISTANCE]
        if len(ahead) == 0:
            ahead = self.node_distances[-1:]
        return self._point_at(ahead[:count])

    def target_point(self) -> np.ndarray:
        """World (x, y) of the next navigation target point."""
        return self.nodes_ahead(1)[0]


__all__ = ["DenseRoute", "RouteTracker", "densify_route", "densify_thinned_plan", "straight_tracer", "to_ego_frame"]
