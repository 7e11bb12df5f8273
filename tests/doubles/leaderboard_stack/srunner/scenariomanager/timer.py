"""Double of scenario_runner's GameTime: game time advanced by ``delta_seconds`` per new frame of a tick."""

import datetime


class GameTime:
    _current_game_time = 0.0
    _carla_time = 0.0
    _last_frame = 0
    _platform_timestamp = 0
    _init = False

    @staticmethod
    def on_carla_tick(timestamp):
        if GameTime._last_frame < timestamp.frame:
            frames = timestamp.frame - GameTime._last_frame if GameTime._init else 1
            GameTime._current_game_time += timestamp.delta_seconds * frames
            GameTime._last_frame = timestamp.frame
            GameTime._platform_timestamp = datetime.datetime.now()
            GameTime._init = True
            GameTime._carla_time = timestamp.elapsed_seconds

    @staticmethod
    def restart():
        GameTime._current_game_time, GameTime._carla_time, GameTime._last_frame, GameTime._init = 0.0, 0.0, 0, False

    @staticmethod
    def get_time():
        return GameTime._current_game_time

    @staticmethod
    def get_frame():
        return GameTime._last_frame

    @staticmethod
    def get_wallclocktime():
        return GameTime._platform_timestamp
