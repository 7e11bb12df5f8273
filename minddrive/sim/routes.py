"""Leaderboard route XML: parse routes (waypoints, scenarios, weathers) and split route files.

The format is the CARLA leaderboard 2.0 / Bench2Drive one (docs/bench2drive.md#route-files)::

    <routes>
      <route id="1711" town="Town12">
        <waypoints> <position x=".." y=".." z=".."/> ... </waypoints>
        <scenarios>
          <scenario name="ParkingCutIn_1" type="ParkingCutIn">
            <trigger_point x=".." y=".." z=".." yaw=".."/>
            <direction value="left"/>            (any other child -> ScenarioSpec.params[tag] = attributes)
          </scenario>
        </scenarios>
        <weathers> <weather route_percentage="0" cloudiness=".." .../> ... </weathers>
      </route>
    </routes>

One parser serves both backends: the CARLA env densifies ``RouteSpec.waypoints`` with
CARLA's GlobalRoutePlanner, and the embedded simulator takes ``RouteSpec.scenario_type``
(``reset(options={"route": spec})`` or ``{"scenario": spec.scenario_type}``).

``python -m minddrive.sim.routes split ROUTES.xml N [--algo A --planner P]`` writes the N
contiguous, balanced chunks Bench2Drive's ``tools/split_xml.py`` writes, with the same names.
"""

from __future__ import annotations

import argparse
import copy
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minddrive.errors import UserError
from minddrive.utils.io import atomic_path

#: weather attributes of the leaderboard's ``<weather>`` element (besides ``route_percentage``)
WEATHER_KEYS = ("cloudiness", "precipitation", "precipitation_deposits", "wetness", "wind_intensity",
                "sun_azimuth_angle", "sun_altitude_angle", "fog_density")
#: scenario type of a route without ``<scenario>`` (Bench2Drive data calls it the same)
NO_SCENARIO = "NoScenario"


@dataclass
class ScenarioSpec:
    """One ``<scenario>`` of a route: where it triggers and its free-form parameters."""

    name: str                                  # e.g. "ParkingCutIn_1" -> the record's scenario_name
    type: str                                  # e.g. "ParkingCutIn"
    trigger_point: tuple[float, float, float, float] | None  # x, y, z (m), yaw (deg), CARLA world frame
    params: dict[str, dict[str, str]] = field(default_factory=dict)  # tag -> XML attributes, as the leaderboard

    def param(self, tag: str, default: str | None = None) -> str | None:
        """The ``value`` attribute of parameter ``tag`` (most scenario parameters have only that)."""
        return self.params.get(tag, {}).get("value", default)


@dataclass
class RouteSpec:
    """One ``<route>``: everything the leaderboard reads from it."""

    id: str                                    # the XML id, e.g. "1711"
    town: str
    waypoints: np.ndarray                      # (N, 3) float64 keypoints x, y, z (world, not yet densified)
    scenarios: list[ScenarioSpec] = field(default_factory=list)
    weathers: list[dict[str, float]] = field(default_factory=list)  # each with route_percentage + WEATHER_KEYS
    index: int = 0                             # position in its file (the record's ``index``)
    attributes: dict[str, str] = field(default_factory=dict)  # extra <route> attributes, e.g. road_id (0.0.4)

    @property
    def name(self) -> str:
        """The leaderboard's ``config.name``."""
        return f"RouteScenario_{self.id}"

    def route_id(self, repetition: int = 0) -> str:
        """The record's ``route_id``, e.g. ``RouteScenario_1711_rep0``."""
        return f"{self.name}_rep{repetition}"

    @property
    def scenario_type(self) -> str:
        """Type of the first scenario: what Bench2Drive's ability table groups by."""
        return self.scenarios[0].type if self.scenarios else NO_SCENARIO

    @property
    def scenario_name(self) -> str:
        return self.scenarios[0].name if self.scenarios else NO_SCENARIO

    @property
    def keypoint_length(self) -> float:
        """Polyline length through the keypoints (m); the densified route is a little longer."""
        if len(self.waypoints) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.waypoints[:, :2], axis=0), axis=1).sum())


def _float_attr(elem: ET.Element, key: str, where: str) -> float:
    value = elem.get(key)
    if value is None:
        raise UserError(f"{where}: <{elem.tag}> is missing attribute '{key}'")
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{where}: <{elem.tag} {key}={value!r}> is not a number") from None


def _parse_scenario(elem: ET.Element, where: str) -> ScenarioSpec:
    name, type_ = elem.get("name"), elem.get("type")
    if not name or not type_:
        raise UserError(f"{where}: <scenario> needs 'name' and 'type' attributes")
    trigger, params = None, {}
    for child in elem:
        if child.tag == "trigger_point":
            trigger = tuple(_float_attr(child, k, where) for k in ("x", "y", "z")) + (float(child.get("yaw", 0.0)),)
        else:
            params[child.tag] = dict(child.attrib)
    return ScenarioSpec(name=name, type=type_, trigger_point=trigger, params=params)


def _parse_route(elem: ET.Element, index: int, source: str) -> RouteSpec:
    route_id = elem.get("id")
    where = f"{source}: route {route_id!r}"
    if route_id is None or elem.get("town") is None:
        raise UserError(f"{source}: <route> #{index} needs 'id' and 'town' attributes")
    positions = elem.findall("./waypoints/position")
    if len(positions) < 2:
        raise UserError(f"{where}: expected at least 2 <waypoints><position> elements, got {len(positions)}")
    waypoints = np.array([[_float_attr(p, k, where) for k in ("x", "y", "z")] for p in positions])
    scenarios = [_parse_scenario(s, where) for s in elem.findall("./scenarios/scenario")]
    weathers = [{k: float(v) for k, v in w.attrib.items()} for w in elem.findall("./weathers/weather")]
    extra = {k: v for k, v in elem.attrib.items() if k not in ("id", "town")}
    return RouteSpec(id=route_id, town=elem.get("town"), waypoints=waypoints, scenarios=scenarios,
                     weathers=weathers, index=index, attributes=extra)


def _read_tree(path: str | os.PathLike) -> ET.ElementTree:
    if not os.path.isfile(path):
        raise UserError(f"{path}: route file not found")
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise UserError(f"{path}: malformed route XML: {exc}") from None
    if tree.getroot().tag != "routes":
        raise UserError(f"{path}: expected a <routes> root element, got <{tree.getroot().tag}>")
    return tree


def parse_subset(subset: str) -> list[str]:
    """The leaderboard's ``--routes-subset``: ``"id1,id2,idA-idB"`` -> ids (ranges need integer ids)."""
    ids: list[str] = []
    for part in filter(None, (p.strip() for p in subset.split(","))):
        if "-" in part.lstrip("-"):
            lo, hi = part.split("-", 1)
            try:
                ids.extend(str(i) for i in range(int(lo), int(hi) + 1))
            except ValueError:
                raise UserError(f"routes subset: range {part!r} must be 'first-last' of integers") from None
        else:
            ids.append(part)
    return ids


def parse_routes(path: str | os.PathLike, subset: str | None = None) -> list[RouteSpec]:
    """Every ``<route>`` of a leaderboard route file, in document order (optionally a subset of ids)."""
    root = _read_tree(path).getroot()
    routes = [_parse_route(elem, i, os.fspath(path)) for i, elem in enumerate(root.findall("route"))]
    seen: set[str] = set()
    for route in routes:
        if route.id in seen:
            raise UserError(f"{path}: route id {route.id!r} appears twice")
        seen.add(route.id)
    if subset:
        wanted = set(parse_subset(subset))
        missing = wanted - seen
        if missing:
            raise UserError(f"{path}: routes subset names ids not in the file: {sorted(missing)[:5]}")
        routes = [r for r in routes if r.id in wanted]
    return routes


def chunk_bounds(count: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous [start, stop) ranges covering ``count`` items, sizes differing by at most 1."""
    if parts < 1:
        raise UserError(f"split: expected at least 1 part, got {parts}")
    size, extra = divmod(count, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def split_routes(path: str | os.PathLike, parts: int, algo: str = "minddrive", planner: str = "traj",
                 out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Split a route file into ``parts`` balanced contiguous chunks, as Bench2Drive's ``split_xml.py``.

    Chunk i is written to ``{stem}_{i}_{algo}_{planner}.xml`` beside the input (or in ``out_dir``);
    the ``<route>`` elements are copied verbatim, so each chunk parses to the same RouteSpecs.
    """
    path = Path(path)
    routes = _read_tree(path).getroot().findall("route")
    if parts > len(routes):
        raise UserError(f"{path}: cannot split {len(routes)} routes into {parts} non-empty parts")
    out_dir = Path(out_dir) if out_dir is not None else path.parent
    written = []
    for i, (start, stop) in enumerate(chunk_bounds(len(routes), parts)):
        root = ET.Element("routes")
        root.text = "\n   "
        for elem in routes[start:stop]:
            root.append(copy.deepcopy(elem))
        target = out_dir / f"{path.stem}_{i}_{algo}_{planner}.xml"
        with atomic_path(target) as tmp:
            ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minddrive.sim.routes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    split = sub.add_parser("split", help="split a route file into N chunks (Bench2Drive tools/split_xml.py)")
    split.add_argument("routes")
    split.add_argument("parts", type=int)
    split.add_argument("--algo", default="minddrive")
    split.add_argument("--planner", default="traj")
    split.add_argument("--out-dir", default=None)
    show = sub.add_parser("show", help="print one line per route: id, town, scenario type, keypoints")
    show.add_argument("routes")
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            for target in split_routes(args.routes, args.parts, args.algo, args.planner, args.out_dir):
                print(target)
        else:
            for r in parse_routes(args.routes):
                print(f"{r.id}\t{r.town}\t{r.scenario_type}\t{len(r.waypoints)} keypoints\t{r.keypoint_length:.1f} m")
    except UserError as exc:
        print(f"minddrive.sim.routes: error: {exc}", file=__import__("sys").stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
