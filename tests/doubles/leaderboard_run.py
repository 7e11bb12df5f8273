"""Drive a leaderboard agent as Bench2Drive's evaluator does, on a :class:`WorldDouble`.

Order (leaderboard_evaluator / agent_wrapper): construct the agent (the base class finds the hero) ->
``set_global_plan(gps_route, route)`` -> ``setup(agent_config)`` -> ``sensors()`` registered with the
sensor interface -> per tick: world tick, game time, sensor data for that frame, ``agent()``, apply control.
Works with the double under ``tests/doubles/leaderboard_stack`` and with the real leaderboard classes.
"""

from __future__ import annotations


def run_route(agent_class, world, gps_route, route, agent_config: str, ticks: int, on_tick=None):
    from srunner.scenariomanager.carla_data_provider import CarlaDataProvider
    from srunner.scenariomanager.timer import GameTime

    CarlaDataProvider.set_world(world)
    GameTime.restart()
    agent = agent_class("localhost", 2000, False)
    agent.set_global_plan(gps_route, route)
    agent.setup(agent_config)
    sensors = agent.sensors()
    for spec in sensors:
        agent.sensor_interface.register_sensor(spec["id"], spec["type"], None)
    controls = []
    for _ in range(ticks):
        frame = world.tick()
        publish_tick(GameTime, world.elapsed, frame, world.dt)
        for tag, data in world.readings(sensors).items():
            agent.sensor_interface.update_sensor(tag, data, frame)
        control = agent()
        world.hero.apply_control(control)
        controls.append((control.steer, control.throttle, control.brake))
        if on_tick is not None:
            on_tick(agent, world)
    agent.destroy()
    return agent, controls


def publish_tick(game_time, elapsed: float, frame: int, dt: float) -> None:
    """Advance GameTime as CARLA's tick callback does, with a ``carla.Timestamp``'s fields."""
    stamp = type("Timestamp", (), {})()
    stamp.elapsed_seconds, stamp.frame, stamp.delta_seconds, stamp.platform_timestamp = elapsed, frame, dt, elapsed
    game_time.on_carla_tick(stamp)
