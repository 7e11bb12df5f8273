"""A stand-in for the CARLA server's world: one hero vehicle and the Bench2Drive rig's readings.

The vehicle moves by a kinematic bicycle under the ``carla.VehicleControl`` it is given; every tick the
rig's sensors report in the formats the leaderboard's sensor interface hands an agent
(``leaderboard/envs/sensor_interface.py``): cameras BGRA ``(H, W, 4)`` uint8, GNSS ``[lat, lon, alt]``
of the GNSS mount (WGS84 via the leaderboard's Mercator mapping), IMU ``[acc x, y, z (m/s^2, sensor
frame, gravity included), gyro x, y, z (rad/s), compass (rad, 0 = north = -y, clockwise)]``, speedometer
``{"speed": forward speed m/s}``. Uses the ``carla`` client library (no server) for transforms and controls.
"""

from __future__ import annotations

import math

import carla
import numpy as np

from leaderboard.utils.route_manipulation import _location_to_gps as location_to_gps  # the name the real module uses

GRAVITY = 9.81


class HeroDouble:
    def __init__(self, x: float, y: float, yaw_deg: float, speed_limit_kmh: float, wheelbase: float = 2.85):
        self.attributes = {"role_name": "hero"}
        self.id = 1
        self.x, self.y, self.yaw, self.speed = float(x), float(y), float(yaw_deg), 0.0
        self.accel_world = np.zeros(2)
        self.yaw_rate_deg = 0.0
        self.speed_limit_kmh, self.wheelbase = float(speed_limit_kmh), wheelbase
        self.control = carla.VehicleControl()

    def apply_control(self, control: carla.VehicleControl) -> None:
        self.control = control

    def step(self, dt: float) -> None:
        c = self.control
        accel = 4.0 * c.throttle - 7.0 * c.brake - 0.05 * self.speed
        new_speed = max(0.0, self.speed + accel * dt)
        self.yaw_rate_deg = math.degrees(new_speed / self.wheelbase * math.tan(c.steer * math.radians(40.0)))
        yaw = math.radians(self.yaw)
        old_velocity = self.speed * np.array([math.cos(yaw), math.sin(yaw)])
        self.yaw += self.yaw_rate_deg * dt
        yaw = math.radians(self.yaw)
        new_velocity = new_speed * np.array([math.cos(yaw), math.sin(yaw)])
        self.x += float(new_velocity[0]) * dt
        self.y += float(new_velocity[1]) * dt
        self.accel_world = (new_velocity - old_velocity) / dt
        self.speed = new_speed

    # --- the carla.Vehicle API the agent, the leaderboard and the rig use
    def get_transform(self) -> carla.Transform:
        return carla.Transform(carla.Location(self.x, self.y, 0.0), carla.Rotation(yaw=self.yaw))

    def get_velocity(self) -> carla.Vector3D:
        yaw = math.radians(self.yaw)
        return carla.Vector3D(self.speed * math.cos(yaw), self.speed * math.sin(yaw), 0.0)

    def get_acceleration(self) -> carla.Vector3D:
        return carla.Vector3D(float(self.accel_world[0]), float(self.accel_world[1]), 0.0)

    def get_angular_velocity(self) -> carla.Vector3D:
        return carla.Vector3D(0.0, 0.0, self.yaw_rate_deg)          # deg/s, as CARLA

    def get_speed_limit(self) -> float:
        return self.speed_limit_kmh                                 # km/h, as CARLA


class WorldDouble:
    """``get_actors()`` for the agent base class, ``tick()`` for the loop, ``readings()`` for the rig."""

    def __init__(self, hero: HeroDouble, dt: float = 0.05, lat_ref: float = 0.0, lon_ref: float = 0.0):
        self.hero, self.dt, self.lat_ref, self.lon_ref = hero, dt, lat_ref, lon_ref
        self.frame, self.elapsed = 0, 0.0

    def get_actors(self) -> list:
        return [self.hero]

    def tick(self) -> int:
        self.hero.step(self.dt)
        self.frame += 1
        self.elapsed += self.dt
        return self.frame

    def sensor_location(self, spec: dict) -> carla.Location:
        location = carla.Location(float(spec.get("x", 0.0)), float(spec.get("y", 0.0)), float(spec.get("z", 0.0)))
        return self.hero.get_transform().transform(location)

    def readings(self, sensors: list[dict]) -> dict:
        """Tag -> data, in the sensor interface's formats, for the agent's ``sensors()`` list."""
        out = {}
        yaw = math.radians(self.hero.yaw)
        for spec in sensors:
            kind = spec["type"]
            if kind == "sensor.camera.rgb":
                image = np.zeros((spec["height"], spec["width"], 4), np.uint8)
                image[..., 3] = 255
                image[: spec["height"] // 2, :, :3] = (200, 150, 90)      # sky (BGR) over grey road
                image[spec["height"] // 2:, :, :3] = 90
                out[spec["id"]] = image
            elif kind == "sensor.other.gnss":
                gps = location_to_gps(self.lat_ref, self.lon_ref, self.sensor_location(spec))
                out[spec["id"]] = np.array([gps["lat"], gps["lon"], gps["z"]], dtype=np.float64)
            elif kind == "sensor.other.imu":
                c, s = math.cos(yaw), math.sin(yaw)
                ax, ay = self.hero.accel_world
                compass = (yaw + math.pi / 2) % (2 * math.pi)
                out[spec["id"]] = np.array([ax * c + ay * s, -ax * s + ay * c, GRAVITY, 0.0, 0.0,
                                            math.radians(self.hero.yaw_rate_deg), compass], dtype=np.float64)
            elif kind == "sensor.speedometer":
                velocity, forward = self.hero.get_velocity(), self.hero.get_transform().get_forward_vector()
                out[spec["id"]] = {"speed": velocity.x * forward.x + velocity.y * forward.y + velocity.z * forward.z}
            else:
                raise ValueError(f"WorldDouble: no reading for sensor type {kind!r}")
        return out


def dense_plan(corners: list[tuple[float, float]], options: list[int], lat_ref: float = 0.0, lon_ref: float = 0.0,
               hop: float = 1.0) -> tuple[list, list]:
    """The leaderboard's route for straight legs between ``corners`` at ``hop`` m: ``(gps_route, route)`` as
    ``interpolate_trajectory`` returns them (RoadOption ``options[k]`` on leg k)."""
    from agents.navigation.local_planner import RoadOption

    route = []
    for k, (a, b) in enumerate(zip(corners[:-1], corners[1:])):
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = max(int(round(np.linalg.norm(b - a) / hop)), 1)
        heading = math.degrees(math.atan2(*(b - a)[::-1]))
        for i in range(n + (k == len(corners) - 2)):
            p = a + (b - a) * i / n
            route.append((carla.Transform(carla.Location(float(p[0]), float(p[1]), 0.0), carla.Rotation(yaw=heading)),
                          RoadOption(options[k])))
    gps_route = [(location_to_gps(lat_ref, lon_ref, t.location), o) for t, o in route]
    return gps_route, route
