"""Embedded road networks as OpenDRIVE maps and routes as leaderboard route XML, for Bench2Drive's tools.

``tools/ability_benchmark.py`` loads ``$CARLA_ROOT/CarlaUE4/Content/Carla/Maps/OpenDrive/<town>.xodr``
with ``carla.Map(town, xodr)``, plans each Traffic_Signs route through its ``<waypoints>`` with
``GlobalRoutePlanner(map, 1.0)`` (``get_topology``, ``get_waypoint``, ``Waypoint.next``, lane neighbours)
and credits the route if it drove past its first ``is_junction`` waypoint + 8. That needs: roads with
a plan view, driving lanes with widths and links, and a junction whose connecting roads carry
``junction`` ids. :func:`network_to_xodr` writes exactly that:

- an arm is one road, its reference line the arm's centre line from the junction mouth outwards;
  outgoing lanes are right lanes -1..-n, incoming ones left lanes 1..n (traffic keeps right);
- a junction connector is one road inside junction ``JUNCTION_ID`` with a single lane -1 whose centre is
  the connector's centre line (``laneOffset`` of half a lane);
- coordinates go from CARLA's left-handed frame to OpenDRIVE's right-handed one by ``y -> -y``
  (CARLA flips it back when it loads the map), headings by ``yaw -> -yaw``.

Polylines are written as 1 m ``line`` geometries, as the simulator samples them.

:func:`junction_completion` is the fraction of the route ``ability_benchmark.py`` compares the route
completion with: (index of the first junction point + 1 + 8) / number of route points, on the route's
own 1 m points (the tool counts GlobalRoutePlanner's 1 m waypoints from the same start).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

import numpy as np

from minddrive.sim.roads import RoadNetwork, Route

JUNCTION_ID = 1000
CONNECTOR_ID_BASE = 100
#: waypoints past the first junction waypoint ability_benchmark.py asks the route to have driven
JUNCTION_CREDIT_POINTS = 8
#: leaderboard route XML keeps a waypoint about every this many metres (Bench2Drive's files: tens of metres)
ROUTE_XML_SPACING = 20.0
MAPS_SUBDIR = Path("CarlaUE4", "Content", "Carla", "Maps", "OpenDrive")


def _fmt(v: float) -> str:
    return f"{float(v):.6f}"


def _plan_view(road: ET.Element, points: np.ndarray) -> float:
    """1 m line geometries along ``points`` (CARLA frame); returns the road length."""
    plan = ET.SubElement(road, "planView")
    s = 0.0
    for a, b in zip(points[:-1], points[1:]):
        length = float(np.hypot(*(b - a)))
        if length < 1e-6:
            continue
        hdg = -math.atan2(b[1] - a[1], b[0] - a[0])
        geometry = ET.SubElement(plan, "geometry", s=_fmt(s), x=_fmt(a[0]), y=_fmt(-a[1]), hdg=_fmt(hdg),
                                 length=_fmt(length))
        ET.SubElement(geometry, "line")
        s += length
    return s


def _lane(parent: ET.Element, lane_id: int, width: float, predecessor: int | None = None,
          successor: int | None = None, mark: str = "solid") -> None:
    lane = ET.SubElement(parent, "lane", id=str(lane_id), type="driving", level="false")
    link = ET.SubElement(lane, "link")
    if predecessor is not None:
        ET.SubElement(link, "predecessor", id=str(predecessor))
    if successor is not None:
        ET.SubElement(link, "successor", id=str(successor))
    ET.SubElement(lane, "width", sOffset="0", a=_fmt(width), b="0", c="0", d="0")
    ET.SubElement(lane, "roadMark", sOffset="0", type=mark, weight="standard", color="standard", width="0.15")


def _road(root: ET.Element, road_id: int, points: np.ndarray, junction: int, speed_limit: float) -> tuple[ET.Element, ET.Element]:
    road = ET.Element("road", name=f"Road {road_id}", id=str(road_id), junction=str(junction))
    link = ET.SubElement(road, "link")
    ET.SubElement(ET.SubElement(road, "type", s="0", type="town"), "speed", max=_fmt(speed_limit), unit="m/s")
    length = _plan_view(road, points)
    road.set("length", _fmt(length))
    ET.SubElement(ET.SubElement(road, "elevationProfile"), "elevation", s="0", a="0", b="0", c="0", d="0")
    ET.SubElement(road, "lateralProfile")
    root.append(road)
    return road, link


def network_to_xodr(network: RoadNetwork, name: str | None = None) -> str:
    """The network as an OpenDRIVE 1.4 document CARLA's ``carla.Map(name, xodr)`` loads."""
    root = ET.Element("OpenDRIVE")
    header = ET.SubElement(root, "header", revMajor="1", revMinor="4", name=name or network.town, version="1",
                           north="0", south="0", east="0", west="0")
    ET.SubElement(header, "geoReference").text = "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    arm_road = {arm.index: arm.index + 1 for arm in network.arms}
    # lane id -> (road id, OpenDRIVE lane id) for the arms' lanes
    odr_lane: dict[int, tuple[int, int]] = {}
    for arm in network.arms:
        road_id = arm_road[arm.index]
        road, link = _road(root, road_id, arm.reference, -1, network.speed_limit)
        ET.SubElement(link, "predecessor", elementType="junction", elementId=str(JUNCTION_ID))
        lanes = ET.SubElement(road, "lanes")
        section = ET.SubElement(lanes, "laneSection", s="0")
        left, center, right = (ET.SubElement(section, tag) for tag in ("left", "center", "right"))
        width = network.lanes[arm.outgoing_lanes[0]].width
        for i in reversed(range(arm.lanes)):
            _lane(left, i + 1, width, mark="solid" if i == arm.lanes - 1 else "broken")
            odr_lane[arm.incoming_lanes[i]] = (road_id, i + 1)
        ET.SubElement(ET.SubElement(center, "lane", id="0", type="none", level="false"), "roadMark", sOffset="0",
                      type="solid", weight="standard", color="yellow", width="0.15")
        for i in range(arm.lanes):
            _lane(right, -(i + 1), width, mark="solid" if i == arm.lanes - 1 else "broken")
            odr_lane[arm.outgoing_lanes[i]] = (road_id, -(i + 1))
    junction = ET.Element("junction", id=str(JUNCTION_ID), name="junction")
    connectors = [lane for lane in network.lanes.values() if lane.in_junction]
    for k, lane in enumerate(connectors):
        road_id = CONNECTOR_ID_BASE + k
        src = next(l for l in network.lanes.values() if lane.id in l.successors)
        (in_road, in_lane), (out_road, out_lane) = odr_lane[src.id], odr_lane[lane.successors[0]]
        road, link = _road(root, road_id, lane.points, JUNCTION_ID, lane.speed_limit)
        ET.SubElement(link, "predecessor", elementType="road", elementId=str(in_road), contactPoint="start")
        ET.SubElement(link, "successor", elementType="road", elementId=str(out_road), contactPoint="start")
        lanes = ET.SubElement(road, "lanes")
        ET.SubElement(lanes, "laneOffset", s="0", a=_fmt(lane.width / 2), b="0", c="0", d="0")
        section = ET.SubElement(lanes, "laneSection", s="0")
        ET.SubElement(ET.SubElement(section, "center"), "lane", id="0", type="none", level="false")
        _lane(ET.SubElement(section, "right"), -1, lane.width, predecessor=in_lane, successor=out_lane, mark="none")
        connection = ET.SubElement(junction, "connection", id=str(k), incomingRoad=str(in_road),
                                   connectingRoad=str(road_id), contactPoint="start")
        ET.SubElement(connection, "laneLink", **{"from": str(in_lane), "to": "-1"})
    root.append(junction)
    ET.indent(root)
    return '<?xml version="1.0" standalone="yes"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def route_keypoints(route: Route, spacing: float = ROUTE_XML_SPACING) -> np.ndarray:
    """Route points about every ``spacing`` metres, the first and the last included (CARLA frame)."""
    n = len(route.points)
    idx = np.unique(np.concatenate([np.arange(0, n - 1, int(spacing)), [n - 1]]))
    return route.points[idx]


def junction_completion(route: Route) -> float:
    """(first junction point + 1 + JUNCTION_CREDIT_POINTS) / route points, as ``ability_benchmark.py`` counts."""
    inside = np.nonzero(route.in_junction)[0]
    if len(inside) == 0:
        return 1.0   # no junction: nothing to credit (the tool raises on such a route)
    return float(inside[0] + 1 + JUNCTION_CREDIT_POINTS) / len(route.points)


def route_xml_element(route_id: str, town: str, route: Route, scenario_name: str, scenario_type: str,
                      weather_id: int | None = None) -> ET.Element:
    """One ``<route>`` of a leaderboard route file (waypoints, one scenario triggered at the start)."""
    elem = ET.Element("route", id=str(route_id), town=town)
    if weather_id is not None:
        elem.set("weather_id", str(weather_id))
    waypoints = ET.SubElement(elem, "waypoints")
    for x, y in route_keypoints(route):
        ET.SubElement(waypoints, "position", x=_fmt(x), y=_fmt(y), z="0.0")
    scenario = ET.SubElement(ET.SubElement(elem, "scenarios"), "scenario", name=scenario_name, type=scenario_type)
    x, y = route.points[0]
    ET.SubElement(scenario, "trigger_point", x=_fmt(x), y=_fmt(y), z="0.0", yaw=_fmt(math.degrees(route.yaw[0])))
    return elem


def write_route_xml(path: str | Path, routes: Iterable[ET.Element]) -> Path:
    root = ET.Element("routes")
    root.extend(routes)
    ET.indent(root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
    return path


def write_xodr(maps_root: str | Path, town: str, network: RoadNetwork) -> Path:
    """``maps_root/CarlaUE4/Content/Carla/Maps/OpenDrive/<town>.xodr`` (set ``CARLA_ROOT=maps_root``)."""
    path = Path(maps_root) / MAPS_SUBDIR / f"{town}.xodr"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(network_to_xodr(network, town))
    return path


__all__ = ["network_to_xodr", "route_keypoints", "junction_completion", "route_xml_element", "write_route_xml",
           "write_xodr", "JUNCTION_ID", "JUNCTION_CREDIT_POINTS", "MAPS_SUBDIR"]
