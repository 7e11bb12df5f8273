"""Double of the leaderboard's AutonomousAgent (Bench2Drive's fork): the parts a user agent relies on."""

from enum import Enum

import carla
from leaderboard.envs.sensor_interface import SensorInterface
from leaderboard.utils.route_manipulation import downsample_route
from srunner.scenariomanager.carla_data_provider import CarlaDataProvider
from srunner.scenariomanager.timer import GameTime


class Track(Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


class AutonomousAgent:
    def __init__(self, carla_host, carla_port, debug=False):
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
        self.sensor_interface = SensorInterface()
        self.wallclock_t0 = None
        self.get_hero()

    def setup(self, path_to_conf_file):
        pass

    def sensors(self):
        return []

    def run_step(self, input_data, timestamp):
        return carla.VehicleControl()

    def destroy(self):
        pass

    def __call__(self):
        input_data = self.sensor_interface.get_data(GameTime.get_frame())
        timestamp = GameTime.get_time()
        if not self.wallclock_t0:
            self.wallclock_t0 = GameTime.get_wallclocktime()
        control = self.run_step(input_data, timestamp)
        control.manual_gear_shift = False
        return control

    def set_global_plan(self, global_plan_gps, global_plan_world_coord):
        ids = downsample_route(global_plan_world_coord, 50)
        self._global_plan_world_coord = [(global_plan_world_coord[i][0], global_plan_world_coord[i][1]) for i in ids]
        self._global_plan = [global_plan_gps[i] for i in ids]
        self._plan_gps_HACK = global_plan_gps

    def get_hero(self):
        self.hero_actor = None
        for actor in CarlaDataProvider.get_world().get_actors():
            if actor.attributes.get("role_name") == "hero":
                self.hero_actor = actor
                break

    def get_metric_info(self):
        transform = self.hero_actor.get_transform()
        xyz = lambda v: [v.x, v.y, v.z]  # noqa: E731
        return {"acceleration": xyz(self.hero_actor.get_acceleration()),
                "angular_velocity": xyz(self.hero_actor.get_angular_velocity()),
                "forward_vector": xyz(transform.get_forward_vector()),
                "right_vector": xyz(transform.get_right_vector()),
                "location": xyz(transform.location),
                "rotation": [transform.rotation.roll, transform.rotation.pitch, transform.rotation.yaw]}
