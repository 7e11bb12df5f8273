import numpy as np
import pytest

from minddrive.errors import UserError
from minddrive.sim.env import EmbeddedDriveEnv
from minddrive.sim.vector import VecDriveEnv

TYPES = ["HardBreakRoute", "ParkedObstacleTwoWays", "SignalizedJunctionLeftTurn"]


def test_vector_env_equals_n_single_envs():
    seeds = [4, 9, 2]
    vec = VecDriveEnv(3)
    vobs, _ = vec.reset(seeds, [{"scenario": t} for t in TYPES])
    singles = [EmbeddedDriveEnv() for _ in TYPES]
    sobs = [env.reset(seed=s, options={"scenario": t})[0] for env, s, t in zip(singles, seeds, TYPES)]
    rng = np.random.default_rng(0)
    for _ in range(120):
        controls = np.stack([rng.uniform(-0.2, 0.2, 3) * [1, 0, 0] + [0, 0.55, 0] for _ in TYPES])
        vobs, vr, vterm, _, _ = vec.step(controls)
        for i, env in enumerate(singles):
            obs, r, term, _, _ = env.step(controls[i])
            for key in ("ego_state", "route", "target_point", "command"):
                np.testing.assert_allclose(vobs[key][i], obs[key], rtol=0, atol=1e-9)
            assert vr[i] == pytest.approx(r) and vterm[i] == term
    for i, env in enumerate(singles):
        a, b = vec.route_records()[i], env.route_record()
        a["meta"].pop("duration_system"), b["meta"].pop("duration_system")
        assert a == b


def test_finished_world_is_frozen_until_reset_world():
    vec = VecDriveEnv(2)
    vec.reset([0, 1], [{"scenario": "HardBreakRoute"}] * 2)
    vec.criteria.done[0] = True
    x0 = vec.x[0]
    _, _, term, _, _ = vec.step(np.tile([0.0, 1.0, 0.0], (2, 1)))
    assert vec.x[0] == x0 and vec.x[1] != vec.route_pts[1, 0, 0] and not term[0]
    obs, info = vec.reset_world(0, 5, {"scenario": "InvadingTurn"})
    assert not vec.criteria.done[0] and info["scenario_type"] == "InvadingTurn" and obs["route"].shape == (20, 2)


def test_wrong_shape_or_nan_controls_name_the_world():
    vec = VecDriveEnv(2)
    vec.reset([0, 1], [{"scenario": "HardBreakRoute"}] * 2)
    with pytest.raises(UserError, match=r"controls: expected shape \(2, 3\)"):
        vec.step(np.zeros((3, 3)))
    with pytest.raises(UserError, match=r"controls\[1\]"):
        vec.step(np.array([[0, 0, 0], [0, np.inf, 0]]))
    assert vec.time.tolist() == [0.0, 0.0]
