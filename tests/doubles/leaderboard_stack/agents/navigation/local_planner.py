"""Double of CARLA PythonAPI's RoadOption (agents/navigation/local_planner.py): a plain Enum, as there."""

from enum import Enum


class RoadOption(Enum):
    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6
