"""Facts shared by every layer: the meta-action vocabulary, navigation commands, the camera rig.

Frames: everything is in the CARLA/Bench2Drive left-handed convention (x forward,
y right, z up, yaw clockwise seen from above, degrees in annotations, radians in code).
"""

from __future__ import annotations

# --- Meta-actions (docs/upstream.md#model). The index order is part of the checkpoint format. ---
SPEED_ACTIONS = (
    "maintain moderate speed",
    "stop",
    "maintain slow speed",
    "speed up",
    "slow down",
    "maintain fast speed",
    "slow down rapidly",
)
PATH_ACTIONS = (
    "lanefollow",
    "straight",
    "turn left",
    "change lane left",
    "turn right",
    "change lane right",
)
SPEED_TOKENS = tuple("<" + a.replace(" ", "_") + ">" for a in SPEED_ACTIONS)
PATH_TOKENS = tuple("<" + a.replace(" ", "_") + ">" for a in PATH_ACTIONS)
NUM_SPEED_ACTIONS = len(SPEED_ACTIONS)
NUM_PATH_ACTIONS = len(PATH_ACTIONS)

# Special tokens of the prompt: image placeholder and the planning query tokens whose
# hidden states feed the trajectory head (speed waypoints and the spatial path).
IMAGE_TOKEN = "<image>"
WAYPOINT_TOKEN = "<waypoint_ego>"
PATH_WAYPOINT_TOKEN = "<path_waypoint_ego>"
SPECIAL_TOKENS = (IMAGE_TOKEN, WAYPOINT_TOKEN, PATH_WAYPOINT_TOKEN) + SPEED_TOKENS + PATH_TOKENS

DECISION_QUESTION = "What actions should the car be taking?"
DECISION_ANSWER_PREFIX = "The car should be"

# --- Navigation: CARLA RoadOption values and their path meta-action index. ---
ROAD_OPTION = {"VOID": -1, "LEFT": 1, "RIGHT": 2, "STRAIGHT": 3, "LANEFOLLOW": 4,
               "CHANGELANELEFT": 5, "CHANGELANERIGHT": 6}
ROAD_OPTION_TO_PATH = {-1: 0, 4: 0, 3: 1, 1: 2, 5: 3, 2: 4, 6: 5}
PATH_TO_ROAD_OPTION = {0: 4, 1: 3, 2: 1, 3: 5, 4: 2, 5: 6}


def path_index_from_road_option(road_option: int) -> int:
    """Path meta-action index for a CARLA RoadOption value (VOID counts as lane follow)."""
    return ROAD_OPTION_TO_PATH.get(int(road_option), 0)


# --- Planning horizon (docs/upstream.md#model): 6 waypoints, 3 s at 2 Hz; path points every 2 m. ---
NUM_FUTURE_WAYPOINTS = 6
WAYPOINT_DT = 0.5
NUM_PATH_POINTS = 10
PATH_POINT_SPACING = 2.0

# --- Navigation route in observations and batches: NUM_ROUTE_POINTS points every ROUTE_POINT_SPACING m. Target
# points: one every KEY_POINT_SPACING m of route plus one at every command change; the target is the first one
# more than TARGET_MIN_DISTANCE m ahead, and ``route`` runs from the ego through the first ROUTE_NODES of them
# (``minddrive.utils.geometry.navigation_route``). ---
NUM_ROUTE_POINTS = 20
ROUTE_POINT_SPACING = 2.0
KEY_POINT_SPACING = 30.0
TARGET_MIN_DISTANCE = 4.0
ROUTE_NODES = 4

# --- Ego state vector carried in observations and batches (a can_bus-like summary). ---
EGO_STATE_FIELDS = ("speed", "acc_x", "acc_y", "yaw_rate", "steer", "throttle", "brake", "speed_limit")
EGO_STATE_DIM = len(EGO_STATE_FIELDS)

# --- The Bench2Drive camera rig (docs/bench2drive.md#camera-rig): x, y, z (m, ego frame), yaw (deg), fov (deg). ---
CAMERA_NAMES = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
CAMERA_FOLDERS = ("rgb_front", "rgb_front_left", "rgb_front_right", "rgb_back", "rgb_back_left", "rgb_back_right")
CAMERA_RIG = {
    "CAM_FRONT": dict(x=0.80, y=0.00, z=1.60, yaw=0.0, fov=70.0),
    "CAM_FRONT_LEFT": dict(x=0.27, y=-0.55, z=1.60, yaw=-55.0, fov=70.0),
    "CAM_FRONT_RIGHT": dict(x=0.27, y=0.55, z=1.60, yaw=55.0, fov=70.0),
    "CAM_BACK": dict(x=-2.00, y=0.00, z=1.60, yaw=180.0, fov=110.0),
    "CAM_BACK_LEFT": dict(x=-0.32, y=-0.55, z=1.60, yaw=-110.0, fov=70.0),
    "CAM_BACK_RIGHT": dict(x=-0.32, y=0.55, z=1.60, yaw=110.0, fov=70.0),
}
B2D_IMAGE_SIZE = (1600, 900)  # width, height of the real Bench2Drive images

# --- Bench2Drive abilities (tools/ability_benchmark.py, v0.0.3+ lists). ---
ABILITIES = {
    "Overtaking": ("Accident", "AccidentTwoWays", "ConstructionObstacle", "ConstructionObstacleTwoWays",
                   "HazardAtSideLaneTwoWays", "HazardAtSideLane", "ParkedObstacleTwoWays", "ParkedObstacle",
                   "VehicleOpensDoorTwoWays"),
    "Merging": ("CrossingBicycleFlow", "EnterActorFlow", "HighwayExit", "InterurbanActorFlow", "HighwayCutIn",
                "InterurbanAdvancedActorFlow", "MergerIntoSlowTrafficV2", "MergerIntoSlowTraffic",
                "NonSignalizedJunctionLeftTurn", "NonSignalizedJunctionRightTurn",
                "NonSignalizedJunctionLeftTurnEnterFlow", "ParkingExit", "SequentialLaneChange",
                "SignalizedJunctionLeftTurn", "SignalizedJunctionRightTurn", "SignalizedJunctionLeftTurnEnterFlow"),
    "Emergency_Brake": ("BlockedIntersection", "DynamicObjectCrossing", "HardBreakRoute",
                        "OppositeVehicleTakingPriority", "OppositeVehicleRunningRedLight", "ParkingCutIn",
                        "PedestrianCrossing", "ParkingCrossingPedestrian", "StaticCutIn", "VehicleTurningRoute",
                        "VehicleTurningRoutePedestrian", "ControlLoss"),
    "Give_Way": ("InvadingTurn", "YieldToEmergencyVehicle"),
    "Traffic_Signs": ("BlockedIntersection", "OppositeVehicleTakingPriority", "OppositeVehicleRunningRedLight",
                      "PedestrianCrossing", "VehicleTurningRoute", "VehicleTurningRoutePedestrian", "EnterActorFlow",
                      "CrossingBicycleFlow", "NonSignalizedJunctionLeftTurn", "NonSignalizedJunctionRightTurn",
                      "NonSignalizedJunctionLeftTurnEnterFlow", "SignalizedJunctionLeftTurn",
                      "SignalizedJunctionRightTurn", "SignalizedJunctionLeftTurnEnterFlow", "T_Junction",
                      "VanillaNonSignalizedTurn", "VanillaSignalizedTurnEncounterGreenLight",
                      "VanillaSignalizedTurnEncounterRedLight", "VanillaNonSignalizedTurnEncounterStopsign"),
}
ABILITY_NAMES = tuple(ABILITIES)

# --- Leaderboard infraction lists, in the order the leaderboard writes them (docs/bench2drive.md#result-files). ---
INFRACTION_KEYS = ("collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light",
                   "stop_infraction", "outside_route_lanes", "min_speed_infractions",
                   "yield_emergency_vehicle_infractions", "scenario_timeouts", "route_dev", "vehicle_blocked",
                   "route_timeout")
# Shared by the embedded simulator's and the CARLA backend's criteria and route tracking.
COLLISION_DEDUPE_SECONDS = 5.0   # CollisionTest: a hit on the same actor within this long is the same collision
COLLISION_DEDUPE_METRES = 5.0    # ... as is one this close to the last one
COMMAND_LOOKAHEAD = 15           # m of route ahead whose first turn / lane change sets the navigation command
# Multiplicative penalty per event (leaderboard 2.0 / Bench2Drive; min speed is unused there).
PENALTY_COEFFICIENTS = {"collisions_pedestrian": 0.5, "collisions_vehicle": 0.6, "collisions_layout": 0.65,
                        "red_light": 0.7, "stop_infraction": 0.8, "scenario_timeouts": 0.7,
                        "yield_emergency_vehicle_infractions": 0.7}
