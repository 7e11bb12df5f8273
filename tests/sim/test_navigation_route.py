"""The ``route`` observation is one function of the navigation targets in the simulator and in the data."""

import numpy as np

from minddrive.eval.suite import load_suite
from minddrive.constants import NUM_ROUTE_POINTS, ROUTE_NODES, ROUTE_POINT_SPACING, TARGET_MIN_DISTANCE
from minddrive.sim.vector import VecDriveEnv
from minddrive.utils.geometry import navigation_route


def test_navigation_route_runs_from_the_ego_through_the_targets():
    route = navigation_route(np.array([[6.0, 8.0], [6.0, 20.0]]), count=8, spacing=2.0)
    np.testing.assert_allclose(route[:5], [[1.2, 1.6], [2.4, 3.2], [3.6, 4.8], [4.8, 6.4], [6.0, 8.0]], atol=1e-6)
    np.testing.assert_allclose(route[5:], [[6.0, 10.0], [6.0, 12.0], [6.0, 14.0]], atol=1e-6)
    # past the last target the last segment continues; no target at all: straight ahead
    np.testing.assert_allclose(navigation_route(np.array([[0.0, 4.0]]), 3, 2.0), [[0, 2], [0, 4], [0, 6]], atol=1e-6)
    np.testing.assert_allclose(navigation_route(np.zeros((0, 2)), 2, 2.0), [[2, 0], [4, 0]])


def test_simulator_route_equals_navigation_route_of_its_targets(monkeypatch):
    """The vectorised observation matches the reference function on every tick of weaving drives,
    up to and past the end of the route (where only the final point is left as a target)."""
    routes = load_suite("sim-b2d-mini").head(3).routes
    env = VecDriveEnv(3)
    for i, r in enumerate(routes):
        env.reset_world(i, r.seed, r.reset_options())
    env.actors.active[:] = False   # an empty road: obstacles would stop the weaving drive before the end
    # and the blind drive cuts corners far off the route: keep InRouteTest's 30 % rule from ending it early
    monkeypatch.setattr("minddrive.sim.criteria.OFF_ROUTE_PERCENTAGE", 100.0)
    worst, ends_seen = 0.0, 0
    for t in range(420):
        controls = np.array([[0.08 * np.sin(t / 15.0 + k), 0.6, 0.0] for k in range(3)])
        obs, *_ = env.step(controls)
        for i in range(3):
            keys = env.key_points[i][np.isfinite(env.key_points[i])]
            ahead = keys[keys > env.progress[i] + TARGET_MIN_DISTANCE][:ROUTE_NODES]
            last = env.route_n[i] - 1
            ends_seen += len(ahead) == 0
            nodes = env.route_pts[i, np.minimum(ahead.astype(int), last)] if len(ahead) else env.route_pts[i, [last]]
            expected = navigation_route(env.to_ego(np.repeat(nodes[None], 3, 0))[i], NUM_ROUTE_POINTS, ROUTE_POINT_SPACING)
            worst = max(worst, float(np.abs(expected - obs["route"][i]).max()))
            np.testing.assert_allclose(obs["target_point"][i], env.to_ego(np.repeat(nodes[:1][None], 3, 0))[i][0], atol=1e-4)
    assert worst < 1e-4
    assert ends_seen > 0
