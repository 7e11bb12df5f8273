"""Top-down rasters of the embedded world: the static map layer and the ego-centred BEV picture.

The map never changes during an episode, so :class:`MapRaster` rasterises it once, in world
coordinates, and every consumer resamples it: the BEV picture with one affine warp, the cameras
(``sensors.py``) with one ground-plane homography per view. Only actors, lights and overlays are
drawn per frame.

Raster convention: pixel ``(u, v)`` (column, row) <-> world ``(x, y) = (x0 + u * res, y0 + v * res)``,
so world +x (east) is to the right and world +y (south) is down, as CARLA's top-down view.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import cv2
import numpy as np

from minddrive.sim.scene import ActorState, Scene

# Palette (RGB). Chosen to read well both in the cameras and in the BEV.
GRASS = (86, 110, 70)
ASPHALT = (72, 72, 76)
MARKING_WHITE = (225, 225, 220)
MARKING_YELLOW = (230, 190, 40)
STOP_LINE = (235, 235, 235)
CURB = (150, 150, 145)
LIGHT_RGB = {0: (230, 40, 30), 1: (240, 200, 30), 2: (40, 210, 70), 3: (60, 60, 60)}

LANE_WIDTH = 3.5        # metres of asphalt drawn around every lane centre line
MARKING_WIDTH = 0.15    # metres
DASH_ON, DASH_OFF = 3.0, 6.0   # broken-line pattern (CARLA towns: ~3 m paint, ~6 m gap)
DOUBLE_GAP = 0.2        # metres between the two lines of a SolidSolid marking

BEV_ACTOR_RGB = {"ego": (255, 255, 255), "vehicle": (60, 130, 240), "emergency": (250, 120, 220),
                 "bicycle": (40, 220, 220), "walker": (250, 140, 40), "static": (150, 150, 170),
                 "prop": (255, 110, 0)}
ROUTE_RGB = (120, 200, 255)
PLAN_PATH_RGB = (250, 80, 250)
PLAN_WAYPOINT_RGB = (255, 255, 0)


def _dashes(points: np.ndarray, on: float, off: float) -> list[np.ndarray]:
    """Split a polyline into painted pieces of length ``on`` separated by gaps of ``off`` (arc length)."""
    seg = np.diff(points, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seg_len)])
    if s[-1] <= 0:
        return []
    pieces = []
    period = on + off
    for start in np.arange(0.0, s[-1], period):
        stop = min(start + on, s[-1])
        inner = (s > start) & (s < stop)
        ts = np.concatenate([[start], s[inner], [stop]])
        xs = np.interp(ts, s, points[:, 0])
        ys = np.interp(ts, s, points[:, 1])
        pieces.append(np.stack([xs, ys], axis=1))
    return pieces


def _offset(points: np.ndarray, distance: float) -> np.ndarray:
    """The polyline shifted sideways by ``distance`` (positive = to the right of travel, y-south frame)."""
    tangent = np.gradient(points, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
    tangent = tangent / np.maximum(norm, 1e-9)
    right = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return points + distance * right


class MapRaster:
    """The static map (asphalt, lane markings, stop lines) rasterised once in world coordinates.

    ``image`` is ``(H, W, 4)`` uint8 RGBA (alpha always 255); warp it and drop the alpha channel.
    """

    def __init__(self, scene: Scene, resolution: float = 0.1, margin: float = 40.0, max_side: int = 4096):
        polylines = [np.asarray(p, dtype=np.float64) for p in (*scene.lane_centers, *scene.road_edges)]
        polylines += [np.asarray(m.points, dtype=np.float64) for m in scene.lane_markings]
        polylines.append(np.asarray(scene.route, dtype=np.float64).reshape(-1, 2))
        allpts = np.concatenate([p.reshape(-1, 2) for p in polylines if len(p)] or [np.zeros((1, 2))])
        lo = allpts.min(axis=0) - margin
        hi = allpts.max(axis=0) + margin
        # Coarsen the raster for very large maps so memory stays bounded (max_side^2 * 3 bytes).
        self.res = max(resolution, float(np.max(hi - lo)) / max_side)
        self.x0, self.y0 = float(lo[0]), float(lo[1])
        width = int(math.ceil((hi[0] - lo[0]) / self.res))
        height = int(math.ceil((hi[1] - lo[1]) / self.res))
        # RGB + a constant alpha of 255: OpenCV's bilinear warps have a vectorised path for 4-channel uint8
        # and not for 3, so the cameras' ground warp runs ~2.5x faster on this layout (same RGB values).
        self.image = np.empty((height, width, 4), np.uint8)
        self.image[:] = (*GRASS, 255)
        self._draw(scene)

    # world <-> raster pixel
    def to_px(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.stack([(pts[:, 0] - self.x0) / self.res, (pts[:, 1] - self.y0) / self.res], axis=1)

    def px_to_world(self) -> np.ndarray:
        """3x3 affine taking homogeneous raster pixels to homogeneous world (x, y, 1)."""
        return np.array([[self.res, 0.0, self.x0], [0.0, self.res, self.y0], [0.0, 0.0, 1.0]])

    def _polyline(self, points: np.ndarray, color, width_m: float) -> None:
        if len(points) < 2:
            return
        shift = 4  # sub-pixel precision for thin paint lines
        px = np.round(self.to_px(points) * (1 << shift)).astype(np.int32)
        thickness = max(1, int(round(width_m / self.res)))
        cv2.polylines(self.image, [px], False, (*color, 255), thickness, cv2.LINE_AA, shift)

    def _draw(self, scene: Scene) -> None:
        for centre in scene.lane_centers:
            self._polyline(np.asarray(centre), ASPHALT, LANE_WIDTH)
        for edge in scene.road_edges:
            self._polyline(np.asarray(edge), CURB, 0.25)
        for marking in scene.lane_markings:
            color = MARKING_YELLOW if marking.color.lower() == "yellow" or marking.type == "Center" else MARKING_WHITE
            points = np.asarray(marking.points, dtype=np.float64)
            kind = marking.type
            if kind == "Broken":
                for dash in _dashes(points, DASH_ON, DASH_OFF):
                    self._polyline(dash, color, MARKING_WIDTH)
            elif kind in ("SolidSolid", "Center"):
                half = (DOUBLE_GAP + MARKING_WIDTH) / 2
                self._polyline(_offset(points, -half), color, MARKING_WIDTH)
                self._polyline(_offset(points, half), color, MARKING_WIDTH)
            elif kind == "Solid":
                self._polyline(points, color, MARKING_WIDTH)
            # "NONE"/other: no paint
        for guard in (*scene.traffic_lights, *scene.stop_signs):
            self._polyline(np.asarray(guard.stop_line, dtype=np.float64), STOP_LINE, 0.4)


def map_fingerprint(scene: Scene) -> str:
    """A cheap identity of the static map (town + polyline shapes + a few coordinates)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(scene.town.encode())
    for group in (scene.lane_centers, scene.road_edges, [m.points for m in scene.lane_markings]):
        digest.update(np.int64(len(group)).tobytes())
        for line in group:
            arr = np.asarray(line, dtype=np.float64)
            digest.update(np.int64(len(arr)).tobytes())
            if len(arr):
                digest.update(arr[0].tobytes() + arr[-1].tobytes())
    for guard in (*scene.traffic_lights, *scene.stop_signs):
        digest.update(np.asarray(guard.stop_line, dtype=np.float64).tobytes())
    return digest.hexdigest()


_MAP_CACHE: OrderedDict[str, MapRaster] = OrderedDict()
_MAP_CACHE_SIZE = [4]


def reserve_map_cache(maps: int) -> None:
    """Keep at least ``maps`` rasters: a batch of N worlds renders N maps in turn, and a smaller LRU
    cache would rebuild every raster (~0.2 s each) at every render."""
    _MAP_CACHE_SIZE[0] = max(_MAP_CACHE_SIZE[0], int(maps))


def map_raster(scene: Scene, resolution: float = 0.1) -> MapRaster:
    """The cached :class:`MapRaster` of ``scene``'s map (a few maps are kept, most recent first)."""
    key = f"{map_fingerprint(scene)}@{resolution}"
    raster = _MAP_CACHE.get(key)
    if raster is None:
        raster = MapRaster(scene, resolution)
        _MAP_CACHE[key] = raster
        while len(_MAP_CACHE) > _MAP_CACHE_SIZE[0]:
            _MAP_CACHE.popitem(last=False)
    else:
        _MAP_CACHE.move_to_end(key)
    return raster


def world_to_ego(ego: ActorState) -> np.ndarray:
    """3x3 homogeneous 2-D transform world (x, y) -> ego (x forward, y right)."""
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    return np.array([[c, s, -(c * ego.x + s * ego.y)], [-s, c, -(-s * ego.x + c * ego.y)], [0.0, 0.0, 1.0]])


def box_corners_2d(actor: ActorState) -> np.ndarray:
    """(4, 2) world footprint corners: front-right, front-left, rear-left, rear-right."""
    c, s = math.cos(actor.yaw), math.sin(actor.yaw)
    fwd, right = np.array([c, s]), np.array([-s, c])
    ex, ey = actor.extent[0], actor.extent[1]
    centre = np.array([actor.x, actor.y])
    return np.stack([centre + ex * fwd + ey * right, centre + ex * fwd - ey * right,
                     centre - ex * fwd - ey * right, centre - ex * fwd + ey * right])


def render_bev(scene: Scene, size_px: int = 200, metres: float = 50.0, draw_plan: bool = True) -> np.ndarray:
    """Ego-centred top-down RGB picture ``(size_px, size_px, 3)`` covering ``metres`` per side.

    Ego at the centre pointing up; map, route, actors coloured by kind, traffic lights by state,
    stop signs, and ``scene.plan`` (path and waypoints) when present and ``draw_plan``.
    """
    raster = map_raster(scene)
    ppm = size_px / metres  # BEV pixels per metre
    half = size_px / 2.0
    # ego (x fwd, y right) -> BEV pixel: column = half + y*ppm, row = half - x*ppm
    ego_to_bev = np.array([[0.0, ppm, half], [-ppm, 0.0, half], [0.0, 0.0, 1.0]])
    world_to_bev = ego_to_bev @ world_to_ego(scene.ego)
    raster_to_bev = world_to_bev @ raster.px_to_world()
    warped = cv2.warpAffine(raster.image, raster_to_bev[:2], (size_px, size_px), flags=cv2.INTER_AREA
                            if ppm * raster.res < 1 else cv2.INTER_LINEAR, borderValue=(*GRASS, 255))
    image = cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)

    def to_bev(points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ world_to_bev[:2, :2].T + world_to_bev[:2, 2]

    def polyline(points, color, thickness):
        if len(points) >= 2:
            cv2.polylines(image, [np.round(to_bev(points) * 16).astype(np.int32)], False, color, thickness,
                          cv2.LINE_AA, 4)

    route = np.asarray(scene.route, dtype=np.float64).reshape(-1, 2)
    polyline(route[max(0, scene.route_progress_index):], ROUTE_RGB, max(1, int(ppm * 0.6)))
    for guard in scene.stop_signs:
        centre = np.round(to_bev([[guard.x, guard.y]])[0]).astype(int)
        cv2.circle(image, tuple(int(v) for v in centre), max(2, int(ppm * 0.8)), (200, 0, 0), -1, cv2.LINE_AA)
    for light in scene.traffic_lights:
        color = LIGHT_RGB.get(int(light.state), LIGHT_RGB[3])
        polyline(np.asarray(light.stop_line), color, max(2, int(ppm * 0.5)))
        centre = np.round(to_bev([[light.x, light.y]])[0]).astype(int)
        cv2.circle(image, tuple(int(v) for v in centre), max(2, int(ppm * 0.7)), color, -1, cv2.LINE_AA)
    for actor in [*scene.actors, scene.ego]:
        corners = np.round(to_bev(box_corners_2d(actor)) * 16).astype(np.int32)
        color = BEV_ACTOR_RGB.get(actor.kind, (200, 200, 200))
        cv2.fillConvexPoly(image, corners, color, cv2.LINE_AA, 4)
        # a dark nose line shows the heading
        cv2.line(image, tuple(corners[0]), tuple(corners[1]), (20, 20, 20), 1, cv2.LINE_AA, 4)
    if draw_plan and scene.plan:
        if scene.plan.get("path") is not None:
            polyline(np.asarray(scene.plan["path"]), PLAN_PATH_RGB, max(1, int(ppm * 0.3)))
        if scene.plan.get("waypoints") is not None:
            for point in to_bev(np.asarray(scene.plan["waypoints"])):
                cv2.circle(image, (int(round(point[0])), int(round(point[1]))), max(2, int(ppm * 0.4)),
                           PLAN_WAYPOINT_RGB, -1, cv2.LINE_AA)
    return image


__all__ = ["MapRaster", "map_raster", "map_fingerprint", "render_bev", "world_to_ego", "box_corners_2d",
           "LIGHT_RGB", "ASPHALT", "GRASS", "MARKING_WHITE", "MARKING_YELLOW"]
