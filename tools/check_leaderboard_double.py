"""Check the test double of Bench2Drive's leaderboard against the real leaderboard code.

Runs the MindDrive leaderboard agent (the tiny model, saved to a temporary checkpoint) on a scripted
route twice -- once through ``tests/doubles/leaderboard_stack`` and once through the real classes of a
Bench2Drive checkout (``AutonomousAgent.__call__`` / ``set_global_plan``, ``SensorInterface`` fed by the real
``CallBack`` parsers, ``GameTime``, ``downsample_route``, ``validate_sensor_configuration``) -- each in its own
process, and compares the plan thinning, every tick's control and the metric info. The CARLA world is the
double from ``tests/doubles/carla_world.py`` in both runs (no server). Needs the carla client library and,
for the real run, py-trees 0.8.3, dictor, six and networkx importable (e.g. a separate venv's
site-packages on PYTHONPATH).

    python tools/check_leaderboard_double.py --bench2drive-root PATH [--ticks 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LANEFOLLOW, LEFT, RIGHT, STRAIGHT, CHANGE_LEFT, CHANGE_RIGHT = 4, 1, 2, 3, 5, 6
ROUTES = {   # corners of straight legs and one RoadOption per leg
    "l_turn": ([(0, 0), (120, 0), (120, 80)], [LANEFOLLOW, RIGHT]),
    "long_straight": ([(0, 0), (333, 0)], [LANEFOLLOW]),
    "junction_and_lane_changes": ([(0, 0), (60, 0), (70, 3.5), (140, 3.5), (160, 3.5), (160, -60), (230, -60),
                                   (240, -63.5), (300, -63.5)],
                                  [LANEFOLLOW, CHANGE_LEFT, LANEFOLLOW, STRAIGHT, LEFT, LANEFOLLOW, CHANGE_RIGHT,
                                   LANEFOLLOW]),
}


def run(mode: str, root: str | None, ticks: int, workdir: Path) -> dict:
    sys.path[:0] = [str(REPO / "team_code"), str(REPO / "tests" / "doubles")]
    if mode == "double":
        sys.path.insert(0, str(REPO / "tests" / "doubles" / "leaderboard_stack"))
    else:
        sys.path[:0] = [str(Path(root) / "leaderboard"), str(Path(root) / "scenario_runner")]
        sys.path.append(str(Path(root) / "scenario_runner" / "srunner" / "tests" / "carla_mocks"))  # `agents` only
    import torch
    from carla_world import HeroDouble, WorldDouble, dense_plan
    from leaderboard.autoagents.autonomous_agent import AutonomousAgent, Track
    from leaderboard.utils.route_manipulation import downsample_route
    from srunner.scenariomanager.carla_data_provider import CarlaDataProvider
    from srunner.scenariomanager.timer import GameTime

    import minddrive_b2d_agent as agent_module
    from leaderboard_run import publish_tick
    from minddrive.config import load_config
    from minddrive.rollout.policy import load_policy, save_policy

    report = {"modules": {name: sys.modules[name].__file__ for name in
                          ("leaderboard.autoagents.autonomous_agent", "srunner.scenariomanager.timer")}}
    report["thinned_ids"] = {}
    for name, (corners, options) in ROUTES.items():
        _, route = dense_plan(corners, options)
        report["thinned_ids"][name] = downsample_route(route, 50)

    cfg_path = REPO / "adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py"
    ckpt = workdir / "ckpt"
    if not ckpt.exists():
        torch.manual_seed(0)
        save_policy(load_policy(load_config(cfg_path), None), ckpt, load_config(cfg_path), meta=dict(stage="check"))
    cfg = workdir / "agent_cfg.py"
    cfg.write_text(f"_base_ = [{str(cfg_path)!r}]\n"
                   "agent = dict(decision_interval=10, tick_dt=0.05, image_size=(45, 80), camera_size=(160, 90))\n")
    os.environ["SAVE_PATH"] = str(workdir / f"save_{mode}")

    gps_route, route = dense_plan(*ROUTES["l_turn"])
    world = WorldDouble(HeroDouble(0.0, 0.0, 0.0, speed_limit_kmh=30.0))
    if mode == "real":
        CarlaDataProvider._world = world   # set_world also reads the map and spawn points of a live server
    else:
        CarlaDataProvider.set_world(world)
    GameTime.restart()
    agent = agent_module.MindDriveAgent("localhost", 2000, False)           # evaluator order
    agent.set_global_plan(gps_route, route)
    agent.setup(f"{cfg}+{ckpt}+RouteScenario_0_rep0_Town01")
    sensors = agent.sensors()
    report["plan_points"] = [len(agent._global_plan), len(agent._global_plan_world_coord)]
    if mode == "real":
        from leaderboard.autoagents.agent_wrapper import validate_sensor_configuration
        from leaderboard.envs.sensor_interface import CallBack, GenericMeasurement

        validate_sensor_configuration(sensors, agent.track, Track.SENSORS.value)
        callbacks = {s["id"]: CallBack(s["id"], s["type"], None, agent.sensor_interface) for s in sensors}
    else:
        for s in sensors:
            agent.sensor_interface.register_sensor(s["id"], s["type"], None)
    controls = []
    for _ in range(ticks):
        frame = world.tick()
        publish_tick(GameTime, world.elapsed, frame, world.dt)
        for spec in sensors:
            data = world.readings([spec])[spec["id"]]
            if mode == "double":
                agent.sensor_interface.update_sensor(spec["id"], data, frame)
            else:
                feed_real_callback(callbacks[spec["id"]], spec, data, frame, GenericMeasurement)
        control = agent()
        world.hero.apply_control(control)
        controls.append([control.steer, control.throttle, control.brake, bool(control.manual_gear_shift)])
    agent.destroy()
    report["controls"] = controls
    report["game_time"] = GameTime.get_time()
    report["metric_info"] = json.loads((workdir / f"save_{mode}" / "RouteScenario_0_rep0_Town01" /
                                        "metric_info.json").read_text())
    report["route_length"] = float(agent.tracker.route.length)
    return report


def feed_real_callback(callback, spec: dict, data, frame: int, generic_measurement) -> None:
    """Hand a reading to the real CallBack parser as the measurement CARLA would deliver."""
    from types import SimpleNamespace as NS

    tag, kind = spec["id"], spec["type"]
    if kind == "sensor.camera.rgb":
        callback._parse_image_cb(NS(raw_data=data.tobytes(), height=data.shape[0], width=data.shape[1],
                                    frame=frame), tag)
    elif kind == "sensor.other.gnss":
        callback._parse_gnss_cb(NS(latitude=data[0], longitude=data[1], altitude=data[2], frame=frame), tag)
    elif kind == "sensor.other.imu":
        callback._parse_imu_cb(NS(accelerometer=NS(x=data[0], y=data[1], z=data[2]),
                                  gyroscope=NS(x=data[3], y=data[4], z=data[5]), compass=data[6], frame=frame), tag)
    else:
        callback._parse_pseudosensor(generic_measurement(data, frame), tag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench2drive-root", required=True, help="a Bench2Drive checkout (leaderboard/, scenario_runner/)")
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--mode", choices=("double", "real"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):          # the real __call__ prints a line per tick
            report = run(args.mode, args.bench2drive_root, args.ticks, Path(args.workdir))
        print(json.dumps(report))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        reports = {}
        for mode in ("double", "real"):
            out = subprocess.run([sys.executable, __file__, "--bench2drive-root", args.bench2drive_root, "--ticks",
                                  str(args.ticks), "--mode", mode, "--workdir", tmp],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-4000:], file=sys.stderr)
                return 1
            reports[mode] = json.loads(out.stdout)
    double, real = reports["double"], reports["real"]
    print("real classes from:", real["modules"])
    failures = []

    def check(what: str, same: bool, detail: str = "") -> None:
        print(f"{'same' if same else 'DIFFERENT'}: {what} {detail}")
        if not same:
            failures.append(what)

    for name in ROUTES:
        check(f"downsample_route ids, route {name}", double["thinned_ids"][name] == real["thinned_ids"][name],
              str(real["thinned_ids"][name]))
    check("thinned plan sizes (gps, world) after set_global_plan", double["plan_points"] == real["plan_points"],
          str(real["plan_points"]))
    check("game time after the run", abs(double["game_time"] - real["game_time"]) < 1e-9, f"{real['game_time']:.2f} s")
    diff = max(abs(a - b) for ca, cb in zip(double["controls"], real["controls"]) for a, b in zip(ca, cb))
    check(f"controls of all {len(real['controls'])} ticks (steer, throttle, brake, manual_gear_shift)",
          len(double["controls"]) == len(real["controls"]) and diff < 1e-6, f"max abs diff {diff:.2e}")
    check("metric_info.json (ticks, keys, values)", double["metric_info"] == real["metric_info"],
          f"{len(real['metric_info'])} ticks")
    check("agent route length", double["route_length"] == real["route_length"], f"{real['route_length']:.1f} m")
    print("OK" if not failures else f"{len(failures)} difference(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
