"""Embedded road networks as Bench2Drive HD maps: the ``<map>_HD_map.npz`` that ``tools/gen_hdmap.py`` writes.

The file holds one key, ``arr``: an (N, 2) object array of (road_id, road) pairs. A road maps each lane id to
the lane's elements, in the generator's order (left marking, right marking, then the lane's centre line),
plus ``Trigger_Volumes`` when a stop sign or traffic light guards the road:

- a marking element is ``{Points: [((x, y, z), (roll, pitch, yaw))], Type, Color, Topology}``, the lane's
  edge on that side seen in its driving direction;
- a centre element is ``{Points: [((x, y, z), (roll, pitch, yaw), is_junction)], Type: 'Center', Color:
  'White', Topology, TopologyType, Left, Right}``;
- ``Topology`` lists the (road_id, lane_id) the lane continues into, ``Left``/``Right`` the neighbouring
  lane's (road_id, lane_id), or ``(None, None)``;
- a trigger volume is ``{Points: [[x, y, z], ...], Type: 'StopSign'|'TrafficLight', ParentActor_Location}``.

Roads and lanes are numbered as :mod:`minddrive.sim.opendrive` exports the same network (an arm is road
``arm + 1`` with outgoing lanes -1..-n and incoming lanes 1..n; a junction connector is road
``CONNECTOR_ID_BASE + k``, lane -1), so the HD map and the OpenDRIVE file of a network agree. Markings are
typed as CARLA reads the OpenDRIVE road marks: the road's centre line ``Solid``/``Yellow``, the outer edge
``Solid``/``White``, lines between lanes of one direction ``Broken``/``White``, junction lanes ``NONE``
(CARLA's towns paint no lines inside junctions, so the junction's kerbs are not in the map either).

Points are the network's own 1 m samples (the generator steps 0.05 m along CARLA's waypoints), lifted onto
the town's terrain: z is the terrain height at the point, roll and pitch the attitude of a car standing
there in the lane's direction.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from minddrive.sim.opendrive import CONNECTOR_ID_BASE
from minddrive.sim.roads import RoadNetwork, _offset, polyline_yaw, right_normal
from minddrive.sim.terrain import Terrain

HD_MAP_SUFFIX = "_HD_map.npz"
TRIGGER_VOLUMES = "Trigger_Volumes"


def map_name(town: str, seed: int) -> str:
    """The name of the road network an episode seed builds in ``town``: ``<town>_seed<seed>``.

    Every embedded route has its own network, so the town alone names no map; route XML, OpenDRIVE files,
    HD maps and the clips' town field all use this name.
    """
    return f"{town}_seed{int(seed)}"


def _lifted(points: np.ndarray, yaw: np.ndarray, terrain: Terrain) -> list[tuple]:
    """``((x, y, z), (roll, pitch, yaw))`` per point, in metres and degrees, standing on ``terrain``."""
    out = []
    for (x, y), heading in zip(points, yaw):
        z, pitch, roll = terrain.attitude(float(x), float(y), float(heading))
        out.append(((float(x), float(y), float(z)), (float(roll), float(pitch), math.degrees(float(heading)))))
    return out


def _marking(points: np.ndarray, yaw: np.ndarray, terrain: Terrain, mark: str, color: str,
             topology: list) -> dict:
    return {"Points": _lifted(points, yaw, terrain), "Type": mark, "Color": color, "Topology": list(topology)}


def network_to_hd_map(network: RoadNetwork, terrain: Terrain, lights=(), stop_signs=()) -> dict:
    """road_id -> road dict of ``network`` (see the module docstring); ``lights``/``stop_signs`` are the
    world's :class:`~minddrive.sim.scenarios.LightSpec` / ``StopSignSpec`` (each with a ``stop_line``)."""
    ids: dict[int, tuple[int, int]] = {}        # simulator lane id -> (road_id, lane_id)
    for arm in network.arms:
        for i in range(arm.lanes):
            ids[arm.outgoing_lanes[i]] = (arm.index + 1, -(i + 1))
            ids[arm.incoming_lanes[i]] = (arm.index + 1, i + 1)
    connectors = [lane for lane in network.lanes.values() if lane.in_junction]
    for k, lane in enumerate(connectors):
        ids[lane.id] = (CONNECTOR_ID_BASE + k, -1)
    roads: dict[int, dict] = {}
    for arm in network.arms:
        road: dict = {}
        for lane_ids, incoming in ((arm.outgoing_lanes, False), (arm.incoming_lanes, True)):
            for i, lane_id in enumerate(lane_ids):
                lane = network.lanes[lane_id]
                sign = -1.0 if incoming else 1.0
                # The network's own marking lines (offsets of the arm's reference), in the lane's direction.
                left = _offset(arm.reference, sign * i * lane.width)
                right = _offset(arm.reference, sign * (i + 1) * lane.width)
                if incoming:
                    left, right = left[::-1], right[::-1]
                topology = [ids[s] for s in lane.successors]
                left_yaw, right_yaw = polyline_yaw(left), polyline_yaw(right)
                inner = lane_ids[i - 1] if i > 0 else (arm.incoming_lanes if not incoming else arm.outgoing_lanes)[0]
                outer = ids[lane_ids[i + 1]] if i + 1 < len(lane_ids) else (None, None)
                road[ids[lane_id][1]] = [
                    _marking(left, left_yaw, terrain, "Solid" if i == 0 else "Broken", "Yellow" if i == 0 else "White",
                             topology),
                    _marking(right, right_yaw, terrain, "Solid" if i == arm.lanes - 1 else "Broken", "White", topology),
                    _centre(lane.points, terrain, False, topology, "Normal", ids[inner], outer),
                ]
        roads[arm.index + 1] = road
    for lane in connectors:
        yaw = polyline_yaw(lane.points)
        normal = right_normal(yaw) * (lane.width / 2)
        topology = [ids[s] for s in lane.successors]
        roads[ids[lane.id][0]] = {-1: [
            _marking(lane.points - normal, yaw, terrain, "NONE", "White", topology),
            _marking(lane.points + normal, yaw, terrain, "NONE", "White", topology),
            _centre(lane.points, terrain, True, topology, "Junction", (None, None), (None, None)),
        ]}
    for light in lights:
        _add_volume(roads, network, terrain, light, "TrafficLight")
    for sign in stop_signs:
        _add_volume(roads, network, terrain, sign, "StopSign")
    return roads


def _centre(points: np.ndarray, terrain: Terrain, in_junction: bool, topology: list, status: str,
            left: tuple, right: tuple) -> dict:
    lifted = [(*point, bool(in_junction)) for point in _lifted(points, polyline_yaw(points), terrain)]
    return {"Points": lifted, "Type": "Center", "Color": "White", "Topology": list(topology), "TopologyType": status,
            "Left": tuple(left), "Right": tuple(right)}


def _add_volume(roads: dict, network: RoadNetwork, terrain: Terrain, guard, kind: str) -> None:
    """A trigger volume on the arm whose mouth the guard's stop line spans, shaped as the generator's:
    a stop sign's five box corners (its square extent), a traffic light's stop line then 0.5 m back."""
    line = np.asarray(guard.stop_line, dtype=np.float64).reshape(2, 2)
    middle = line.mean(axis=0)
    arm = min(network.arms, key=lambda a: float(np.linalg.norm(a.reference - middle, axis=1).min()))
    if kind == "TrafficLight":
        back = 0.5 * np.array([math.cos(arm.heading), math.sin(arm.heading)])
        corners = np.concatenate([line, (line + back)[::-1]])
    else:
        along = line[1] - line[0]
        yaw = math.atan2(along[1], along[0])
        half = max(float(np.hypot(*along)) / 2, 1.0)
        local = np.array([[-half, -half], [half, -half], [half, 0.0], [half, half], [-half, half]])
        c, s = math.cos(yaw), math.sin(yaw)
        corners = middle + local @ np.array([[c, s], [-s, c]])
    points = [[float(x), float(y), float(terrain.height(x, y))] for x, y in corners]
    parent = [float(guard.x), float(guard.y), float(terrain.height(guard.x, guard.y))]
    roads[arm.index + 1].setdefault(TRIGGER_VOLUMES, []).append(
        {"Points": points, "Type": kind, "ParentActor_Location": parent})


def hd_map_array(roads: dict) -> np.ndarray:
    """The generator's ``arr``: ``np.array(list(roads.items()), dtype=object)``, an (N, 2) object array."""
    arr = np.empty((len(roads), 2), dtype=object)
    for row, (road_id, road) in enumerate(roads.items()):
        arr[row, 0], arr[row, 1] = road_id, road
    return arr


def write_hd_map(map_root: str | os.PathLike, name: str, world, terrain: Terrain) -> Path:
    """``map_root/<name>_HD_map.npz`` for a :class:`~minddrive.sim.scenarios.ScenarioWorld` (written whole,
    then renamed, so a reader never sees half a map)."""
    path = Path(map_root, f"{name}{HD_MAP_SUFFIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    roads = network_to_hd_map(world.network, terrain, world.lights, world.stop_signs)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, arr=hd_map_array(roads))
    os.replace(tmp, path)
    return path


__all__ = ["map_name", "network_to_hd_map", "hd_map_array", "write_hd_map", "HD_MAP_SUFFIX", "TRIGGER_VOLUMES"]
