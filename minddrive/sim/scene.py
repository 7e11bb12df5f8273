"""A read-only snapshot of the embedded world: what sensors, the data writer and the viewer draw.

The simulator core produces it (``EmbeddedDriveEnv.snapshot()``); renderers and writers only
read it, so they never depend on simulator internals. World frame: CARLA-style left-handed,
x east, y south, yaw in radians clockwise from +x (seen from above); metres and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Actor kinds, with the Bench2Drive annotation ``class`` each maps to.
ACTOR_CLASS = {"ego": "ego_vehicle", "vehicle": "vehicle", "emergency": "vehicle", "bicycle": "vehicle",
               "walker": "walker", "static": "vehicle", "prop": "traffic_sign"}
LIGHT_STATES = {0: "Red", 1: "Yellow", 2: "Green", 3: "Off"}  # CARLA TrafficLightState ints


@dataclass
class ActorState:
    id: int
    kind: str                 # ego | vehicle | emergency | bicycle | walker | static | prop
    type_id: str              # CARLA-like blueprint id, e.g. "vehicle.lincoln.mkz_2020"
    x: float
    y: float
    yaw: float                # rad
    speed: float              # m/s along the heading
    extent: tuple[float, float, float]  # half length, half width, half height (as Bench2Drive)
    z: float = 0.0
    brake: float = 0.0
    light_state: str = "NONE"


@dataclass
class LaneMarking:
    points: np.ndarray        # (N, 2) world polyline
    type: str                 # Broken | Solid | SolidSolid | Center | NONE
    color: str = "White"      # White | Yellow


@dataclass
class TrafficLight:
    id: int
    x: float
    y: float
    state: int                # 0 red, 1 yellow, 2 green (CARLA TrafficLightState)
    stop_line: np.ndarray     # (2, 2) world endpoints of the stop line it guards
    affects_ego: bool = False


@dataclass
class StopSign:
    id: int
    x: float
    y: float
    stop_line: np.ndarray     # (2, 2)
    affects_ego: bool = False


@dataclass
class Scene:
    time: float
    town: str
    ego: ActorState
    actors: list[ActorState]
    lane_markings: list[LaneMarking]
    road_edges: list[np.ndarray]          # (N, 2) polylines bounding the drivable area
    lane_centers: list[np.ndarray]        # (N, 2) centre lines of every lane
    traffic_lights: list[TrafficLight]
    stop_signs: list[StopSign]
    route: np.ndarray                     # (R, 2) the ego route centre line, world frame
    route_progress_index: int             # index into ``route`` of the ego's projection
    command: int                          # path meta-action index from navigation
    road_option: int                      # CARLA RoadOption of the same command
    target_point: np.ndarray              # (2,) world
    control: tuple[float, float, float]   # last applied steer, throttle, brake
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(3))   # world m/s^2
    angular_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # rad/s
    scenario_type: str = ""
    weather_id: int = 0
    plan: dict | None = None              # optional overlay for viewers: {"path": (P,2), "waypoints": (6,2)} world
