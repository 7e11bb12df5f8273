"""Procedural road networks: one junction with 3 or 4 arms, a lane graph, and routes through it.

World frame (CARLA, left-handed): x east, y south, yaw clockwise from +x. The right-hand
normal of a heading ``h`` is therefore ``(-sin h, cos h)``, and traffic keeps right.

A network is a junction at the origin with arms at headings 0, 90, 180, 270 degrees (a T
junction drops one). Each arm is a two-way road of ``lanes`` lanes per direction; its
reference line starts at the junction mouth, runs straight for ``STRAIGHT_APPROACH`` metres
and may then curve. Lanes are polylines resampled every metre (index = arc length), which
makes moving an actor along a lane an O(1) lookup. Junction connectors are cubic Beziers from
each incoming lane to the outgoing lanes it may reach (right turns from the outermost lane,
left turns from the innermost one, straight lane to lane).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minddrive.constants import ROAD_OPTION
from minddrive.errors import UserError
from minddrive.sim.scene import LaneMarking

LANE_WIDTH = 3.5
STRAIGHT_APPROACH = 30.0        # straight metres next to the junction, so stop lines are square
ALLOWED_OUT_DISTANCE = 0.5      # leaderboard OutsideRouteLanesTest tolerance past a lane edge
LANE_CHANGE_LENGTH = 20.0       # metres over which a planned route lane change blends


def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def right_normal(yaw):
    """Unit vector(s) to the right of heading ``yaw`` in the left-handed world frame."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1)


def resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Resample a polyline at constant arc-length ``spacing`` (first and last points kept)."""
    points = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    points, seg = points[keep], seg[seg > 1e-9]
    s = np.concatenate([[0.0], np.cumsum(seg)])
    samples = np.append(np.arange(0.0, s[-1], spacing), s[-1])
    if len(samples) > 1 and samples[-1] - samples[-2] < 1e-6:
        samples = samples[:-1]
    return np.stack([np.interp(samples, s, points[:, 0]), np.interp(samples, s, points[:, 1])], axis=1)


def polyline_yaw(points: np.ndarray) -> np.ndarray:
    """Heading of a polyline at each point (forward differences, last one repeated)."""
    d = np.diff(points, axis=0)
    yaw = np.arctan2(d[:, 1], d[:, 0])
    return np.append(yaw, yaw[-1])


def polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def bezier(p0, p1, p2, p3, n: int = 64) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


@dataclass
class Lane:
    id: int
    points: np.ndarray              # (P, 2) centre line in driving direction, 1 m apart
    width: float
    arm: int                        # arm index, -1 for junction connectors
    incoming: bool                  # drives towards the junction (False: away from it, or connector)
    index: int                      # 0 = next to the road centre line, growing outwards (to the right)
    lanes_same_direction: int
    speed_limit: float              # m/s
    in_junction: bool = False
    road_option: int = ROAD_OPTION["LANEFOLLOW"]
    successors: list[int] = field(default_factory=list)

    @property
    def length(self) -> float:
        return float(len(self.points) - 1)


@dataclass
class Arm:
    index: int
    heading: float                  # outward heading at the junction mouth (rad)
    reference: np.ndarray           # (P, 2) road centre line, outward from the mouth, 1 m apart
    lanes: int
    incoming_lanes: list[int]       # lane ids by index (0 = innermost)
    outgoing_lanes: list[int]


@dataclass
class RoadNetwork:
    town: str
    lanes: dict[int, Lane]
    arms: list[Arm]
    junction_radius: float          # distance from the junction centre to every arm mouth
    lane_markings: list[LaneMarking]
    road_edges: list[np.ndarray]
    speed_limit: float

    def arm_by_heading(self, heading_deg: float) -> Arm:
        for arm in self.arms:
            if abs(wrap_angle(np.deg2rad(heading_deg) - arm.heading)) < 1e-3:
                return arm
        raise UserError(f"road network {self.town}: no arm at heading {heading_deg} deg")

    def connector(self, from_lane: int, to_lane: int) -> Lane:
        for lane_id in self.lanes[from_lane].successors:
            if self.lanes[lane_id].successors == [to_lane]:
                return self.lanes[lane_id]
        raise UserError(f"road network {self.town}: lane {from_lane} does not connect to lane {to_lane}")

    def lane_centers(self) -> list[np.ndarray]:
        return [lane.points for lane in self.lanes.values()]


def turn_option(from_heading: float, to_heading: float) -> int:
    """RoadOption of driving from heading ``from_heading`` into ``to_heading`` (clockwise = right)."""
    delta = float(wrap_angle(to_heading - from_heading))
    if abs(delta) < np.deg2rad(30):
        return ROAD_OPTION["STRAIGHT"]
    return ROAD_OPTION["RIGHT"] if delta > 0 else ROAD_OPTION["LEFT"]


def _arm_reference(heading: float, mouth: float, length: float, curvature: float) -> np.ndarray:
    """Centre line of an arm: straight for STRAIGHT_APPROACH metres, then constant curvature."""
    s = np.arange(0.0, length + 0.5, 1.0)
    curve_s = np.clip(s - STRAIGHT_APPROACH, 0.0, None)
    yaw = heading + curvature * curve_s
    step = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    pts = np.concatenate([[[0.0, 0.0]], np.cumsum(step[:-1], axis=0)]) + mouth * np.array([np.cos(heading), np.sin(heading)])
    return resample(pts)


def _offset(reference: np.ndarray, offset: float) -> np.ndarray:
    """Polyline shifted ``offset`` metres to the right of its own direction."""
    return reference + offset * right_normal(polyline_yaw(reference))


def build_network(seed: int, arm_headings_deg=(0, 90, 180, 270), lanes: int = 1, arm_length: float = 150.0,
                  curvature: float = 0.0, speed_limit: float = 11.0, lane_width: float = LANE_WIDTH) -> RoadNetwork:
    """A junction with the given arms. ``curvature`` (1/m, signed) bends every arm after its straight part."""
    if lanes < 1 or lanes > 3:
        raise UserError(f"road network: lanes must be 1..3, got {lanes}")
    if not 2 <= len(arm_headings_deg) <= 4:
        raise UserError(f"road network: expected 2-4 arms, got {len(arm_headings_deg)}")
    if abs(curvature) > 1.0 / 40.0:
        raise UserError(f"road network: |curvature| must be <= 1/40 m^-1, got {curvature}")
    town = f"EmbeddedTown{seed % 10:02d}"
    mouth = lanes * lane_width + 4.0
    road_lanes: dict[int, Lane] = {}
    arms: list[Arm] = []
    markings: list[LaneMarking] = []
    edges: list[np.ndarray] = []

    def add_lane(**kwargs) -> int:
        lane_id = len(road_lanes)
        road_lanes[lane_id] = Lane(id=lane_id, **kwargs)
        return lane_id

    for k, heading_deg in enumerate(arm_headings_deg):
        heading = float(np.deg2rad(heading_deg))
        reference = _arm_reference(heading, mouth, arm_length, curvature)
        incoming, outgoing = [], []
        for i in range(lanes):
            out_pts = _offset(reference, (i + 0.5) * lane_width)
            in_pts = _offset(reference, -(i + 0.5) * lane_width)[::-1].copy()
            outgoing.append(add_lane(points=resample(out_pts), width=lane_width, arm=k, incoming=False, index=i,
                                     lanes_same_direction=lanes, speed_limit=speed_limit))
            incoming.append(add_lane(points=resample(in_pts), width=lane_width, arm=k, incoming=True, index=i,
                                     lanes_same_direction=lanes, speed_limit=speed_limit))
        arms.append(Arm(index=k, heading=heading, reference=reference, lanes=lanes, incoming_lanes=incoming,
                        outgoing_lanes=outgoing))
        markings.append(LaneMarking(points=reference.copy(), type="Center", color="Yellow"))
        for i in range(1, lanes):
            for side in (1, -1):
                markings.append(LaneMarking(points=_offset(reference, side * i * lane_width), type="Broken"))
        for side in (1, -1):
            edge = _offset(reference, side * lanes * lane_width)
            markings.append(LaneMarking(points=edge, type="Solid"))
            edges.append(edge)

    # Junction connectors: every incoming lane to the outgoing lanes of the other arms.
    for a in arms:
        for b in arms:
            if a is b:
                continue
            option = turn_option(a.heading + np.pi, b.heading)
            if option == ROAD_OPTION["STRAIGHT"]:
                pairs = [(i, i) for i in range(lanes)]
            elif option == ROAD_OPTION["RIGHT"]:
                pairs = [(lanes - 1, lanes - 1)]
            else:
                pairs = [(0, 0)]
            for i, j in pairs:
                src, dst = road_lanes[a.incoming_lanes[i]], road_lanes[b.outgoing_lanes[j]]
                p0, p3 = src.points[-1], dst.points[0]
                d0 = np.array([np.cos(a.heading + np.pi), np.sin(a.heading + np.pi)])
                d3 = np.array([np.cos(b.heading), np.sin(b.heading)])
                reach = 0.45 * np.linalg.norm(p3 - p0)
                pts = resample(bezier(p0, p0 + reach * d0, p3 - reach * d3, p3))
                cid = add_lane(points=pts, width=lane_width, arm=-1, incoming=False, index=i,
                               lanes_same_direction=lanes, speed_limit=speed_limit, in_junction=True,
                               road_option=option, successors=[dst.id])
                src.successors.append(cid)

    # Kerbs between neighbouring arms (clockwise order); a missing arm leaves a straight kerb.
    ordered = sorted(arms, key=lambda arm: arm.heading % (2 * np.pi))
    for a, b in zip(ordered, ordered[1:] + ordered[:1]):
        start = _offset(a.reference, lanes * lane_width)[0]
        end = _offset(b.reference, -lanes * lane_width)[0]
        gap = float(wrap_angle(b.heading - a.heading)) % (2 * np.pi)
        if abs(gap - np.pi / 2) < 1e-3:
            # Round the corner through the point where the two kerb lines meet.
            da = np.array([np.cos(a.heading), np.sin(a.heading)])
            db = np.array([np.cos(b.heading), np.sin(b.heading)])
            t = np.linalg.solve(np.stack([da, -db], axis=1), end - start)[0]
            corner = start + t * da
            kerb = resample(bezier(start, (start + 2 * corner) / 3, (end + 2 * corner) / 3, end, 24))
        else:
            kerb = resample(np.stack([start, end]))
        edges.append(kerb)
        markings.append(LaneMarking(points=kerb, type="Solid"))

    return RoadNetwork(town=town, lanes=road_lanes, arms=arms, junction_radius=mouth, lane_markings=markings,
                       road_edges=edges, speed_limit=speed_limit)


# ------------------------------------------------------------------------------------------ routes
@dataclass
class Route:
    """A dense ego route: points every metre with per-point navigation and lane-test data."""

    points: np.ndarray          # (R, 2) world
    yaw: np.ndarray             # (R,)
    road_option: np.ndarray     # (R,) int CARLA RoadOption
    in_junction: np.ndarray     # (R,) bool
    lane_lo: np.ndarray         # (R,) allowed lateral offset (m, right positive) -- left bound
    lane_hi: np.ndarray         # (R,) right bound
    speed_limit: np.ndarray     # (R,) m/s
    lane_ids: list[int]         # the lanes it runs through, in order

    @property
    def length(self) -> float:
        return float(len(self.points) - 1)

    def lateral_offset(self, index: int, xy: np.ndarray) -> float:
        """Signed offset of ``xy`` to the right of the route at point ``index``."""
        return float(np.dot(np.asarray(xy) - self.points[index], right_normal(self.yaw[index])))


def _lane_bounds(lane: Lane) -> tuple[float, float]:
    """Allowed lateral offsets around a lane's centre: same-direction lanes plus the kerb tolerance.

    Crossing the centre line counts at once (the leaderboard's wrong-lane check); the kerb side
    allows ``lane_width/2 + ALLOWED_OUT_DISTANCE`` past the outermost lane centre.
    """
    lo = -(lane.index + 0.5) * lane.width
    hi = (lane.lanes_same_direction - lane.index - 0.5) * lane.width + ALLOWED_OUT_DISTANCE
    return lo, hi


def build_route(network: RoadNetwork, lane_ids: list[int], start_s: float = 0.0, end_trim: float = 0.0,
                lane_changes: list[tuple[float, int]] | None = None) -> Route:
    """Concatenate lanes into a dense route, starting ``start_s`` metres into the first lane.

    ``lane_changes``: (route distance, new lane id) pairs -- from that distance on the route
    moves to the neighbouring lane over ``LANE_CHANGE_LENGTH`` metres (CHANGELANE* options).
    """
    pts, options, junction, lo, hi, limits = [], [], [], [], [], []
    for n, lane_id in enumerate(lane_ids):
        lane = network.lanes[lane_id]
        seg = lane.points if n == 0 else lane.points[1:]
        b = _lane_bounds(lane)
        pts.append(seg)
        options += [lane.road_option] * len(seg)
        junction += [lane.in_junction] * len(seg)
        lo += [b[0] if not lane.in_junction else -np.inf] * len(seg)
        hi += [b[1] if not lane.in_junction else np.inf] * len(seg)
        limits += [lane.speed_limit] * len(seg)
    points = np.concatenate(pts)
    options, junction = np.array(options), np.array(junction)
    lo, hi, limits = np.array(lo), np.array(hi), np.array(limits)
    first = int(round(start_s))
    last = len(points) - int(round(end_trim))
    if last - first < 20:
        raise UserError(f"route: start_s={start_s} / end_trim={end_trim} leave less than 20 m of route")
    sl = slice(first, last)
    points, options, junction, lo, hi, limits = points[sl], options[sl], junction[sl], lo[sl], hi[sl], limits[sl]
    yaw = polyline_yaw(points)
    for at, new_lane in lane_changes or []:
        lane = network.lanes[new_lane]
        i0, i1 = int(at), int(at + LANE_CHANGE_LENGTH)
        if i1 >= len(points) or junction[i0:].any():
            raise UserError(f"route: a lane change at {at} m must lie on the route's last road, before its end")
        # Lateral shift to the new lane: its signed distance from the route at the change point.
        target = lane.points[np.argmin(np.linalg.norm(lane.points - points[i1], axis=1))]
        shift = float(np.dot(target - points[i1], right_normal(yaw[i1])))
        ramp = np.clip((np.arange(len(points)) - i0) / (i1 - i0), 0.0, 1.0)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
        normals = right_normal(yaw)
        points = points + (shift * ramp)[:, None] * normals
        # Both lanes belong to one carriageway, so its bounds just move with the route.
        lo, hi = lo - shift * ramp, hi - shift * ramp
        blend = slice(i0, i1 + 1)
        options[blend] = ROAD_OPTION["CHANGELANERIGHT"] if shift > 0 else ROAD_OPTION["CHANGELANELEFT"]
        lane_ids = lane_ids + [new_lane]
    points = resample(points)
    n = min(len(points), len(options))
    points = points[:n]
    return Route(points=points, yaw=polyline_yaw(points), road_option=options[:n], in_junction=junction[:n],
                 lane_lo=lo[:n], lane_hi=hi[:n], speed_limit=limits[:n], lane_ids=list(lane_ids))


def junction_route(network: RoadNetwork, from_heading_deg: float, to_heading_deg: float, lane_index: int = 0,
                   start_s: float = 0.0, end_trim: float = 0.0, exit_lane_index: int | None = None) -> Route:
    """Route from the arm at ``from_heading_deg`` through the junction into ``to_heading_deg``."""
    a, b = network.arm_by_heading(from_heading_deg), network.arm_by_heading(to_heading_deg)
    src = a.incoming_lanes[min(lane_index, a.lanes - 1)]
    for cid in network.lanes[src].successors:
        dst = network.lanes[cid].successors[0]
        if network.lanes[dst].arm == b.index and (exit_lane_index is None or network.lanes[dst].index == exit_lane_index):
            return build_route(network, [src, cid, dst], start_s=start_s, end_trim=end_trim)
    raise UserError(f"route: lane {lane_index} of arm {from_heading_deg} deg cannot turn into arm {to_heading_deg} deg")
