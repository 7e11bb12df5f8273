import numpy as np
import pytest

from minddrive.constants import EGO_STATE_DIM
from minddrive.errors import UserError
from minddrive.registry import ENVS, build
from minddrive.constants import NUM_ROUTE_POINTS
from minddrive.sim.env import EmbeddedDriveEnv
from minddrive.sim.scenarios import SCENARIO_TYPES, build_scenario, scenarios_for_ability


def test_registered_and_observation_contract():
    env = build(dict(type="EmbeddedDriveEnv"), ENVS, where="env")
    obs, info = env.reset(seed=5, options={"scenario": "HardBreakRoute"})
    assert obs["ego_state"].shape == (EGO_STATE_DIM,) and obs["ego_state"].dtype == np.float32
    assert obs["route"].shape == (NUM_ROUTE_POINTS, 2) and obs["target_point"].shape == (2,)
    # The route starts 2 m from the ego, ahead along x (ego frame: x forward), towards the first target.
    assert np.linalg.norm(obs["route"][0]) == pytest.approx(2.0, abs=1e-4) and obs["route"][0, 0] > 1.9
    assert np.linalg.norm(np.diff(obs["route"], axis=0), axis=1) == pytest.approx(2.0, abs=0.05)
    assert np.allclose(np.linalg.norm(np.diff(obs["route"][:5], axis=0), axis=1), 2.0, atol=0.1)
    assert obs["command"] == 0 and info["status"] == "Started" and info["scenario_type"] == "HardBreakRoute"


def test_bad_control_is_rejected_before_anything_moves():
    env = EmbeddedDriveEnv()
    env.reset(seed=1, options={"scenario": "ParkedObstacle"})
    before = (env.core.x.copy(), env.core.time.copy(), env.core.actors.s.copy())
    for bad in ([0.0, np.nan, 0.0], [0.0, 1.0], np.zeros((1, 3))):
        with pytest.raises(UserError, match="control"):
            env.step(bad)
    assert np.array_equal(env.core.x, before[0]) and np.array_equal(env.core.time, before[1])
    assert np.array_equal(env.core.actors.s, before[2])


def test_unknown_scenario_and_impossible_parameters_are_user_errors():
    env = EmbeddedDriveEnv()
    with pytest.raises(UserError, match="unknown type 'Nope'"):
        env.reset(seed=0, options={"scenario": "Nope"})
    with pytest.raises(UserError, match="ability"):
        scenarios_for_ability("Flying")


def test_scenario_families_cover_all_five_abilities():
    assert len(SCENARIO_TYPES) >= 15
    for ability in ("Merging", "Overtaking", "Emergency_Brake", "Give_Way", "Traffic_Signs"):
        assert len(scenarios_for_ability(ability)) >= 2, ability
    a, b = build_scenario("Accident", 11), build_scenario("Accident", 11)
    assert np.array_equal(a.route.points, b.route.points) and len(a.actors) == len(b.actors)
    assert not np.array_equal(build_scenario("Accident", 12).route.points, a.route.points) or \
        build_scenario("Accident", 12).actors[0].path.tolist() != a.actors[0].path.tolist()


def _run(env, seed, scenario, controls):
    env.reset(seed=seed, options={"scenario": scenario})
    out = []
    for u in controls:
        obs, r, term, _, info = env.step(u)
        out.append((obs["ego_state"].copy(), r, term))
        if term:
            break
    return out, env.route_record()


def test_deterministic_for_a_seed():
    controls = [np.array([0.05 * np.sin(k / 10), 0.6, 0.0]) for k in range(150)]
    a, rec_a = _run(EmbeddedDriveEnv(), 3, "DynamicObjectCrossing", controls)
    b, rec_b = _run(EmbeddedDriveEnv(), 3, "DynamicObjectCrossing", controls)
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    rec_a["meta"].pop("duration_system"), rec_b["meta"].pop("duration_system")
    assert rec_a == rec_b


def test_constant_driver_is_stopped_by_a_parked_obstacle_and_collects_progress_reward():
    env = EmbeddedDriveEnv()
    env.reset(seed=0, options={"scenario": "ParkedObstacle"})
    total, events = 0.0, []
    for _ in range(600):
        obs, r, term, _, info = env.step([0.0, 0.5 if obs_speed(env) < 6 else 0.0, 0.0])
        total += r
        events += info["events"]
        if term:
            break
    record = env.route_record()
    assert [k for k, _ in events if k.startswith("collisions")] == ["collisions_vehicle"]   # a parked car, once
    assert record["scores"]["score_penalty"] == pytest.approx(0.6)
    assert info["route_completion"] < 50.0
    assert total == pytest.approx(info["route_completion"], abs=1e-6)


def obs_speed(env):
    return float(env.core.speed[0])


def test_snapshot_is_a_scene():
    from minddrive.sim.scene import Scene

    env = EmbeddedDriveEnv()
    env.reset(seed=2, options={"scenario": "VanillaSignalizedTurnEncounterRedLight"})
    scene = env.snapshot()
    assert isinstance(scene, Scene) and scene.town.startswith("EmbeddedTown")
    assert len(scene.traffic_lights) == 4 and sum(l.affects_ego for l in scene.traffic_lights) == 1
    assert scene.route.shape[1] == 2 and scene.ego.kind == "ego"


def test_rendering_adds_images_when_the_sensor_module_exists():
    pytest.importorskip("minddrive.sim.sensors")
    env = EmbeddedDriveEnv(render=True, image_size=(64, 112))
    obs, _ = env.reset(seed=0, options={"scenario": "HardBreakRoute"})
    assert obs["images"].shape == (6, 64, 112, 3) and obs["lidar2img"].shape == (6, 4, 4)


def test_every_bench2drive_type_builds_a_world_named_after_it():
    from minddrive.constants import ABILITIES
    from minddrive.sim.scenarios import ALL_SCENARIO_TYPES

    every = {t for types in ABILITIES.values() for t in types}
    assert every <= set(ALL_SCENARIO_TYPES) and len(ALL_SCENARIO_TYPES) == 44
    world = build_scenario("HighwayCutIn", 0)
    assert world.scenario_type == "HighwayCutIn" and world.route.length > 100
