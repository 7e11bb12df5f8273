import numpy as np
import pytest

from minddrive.constants import ROAD_OPTION
from minddrive.errors import UserError
from minddrive.sim.roads import build_network, build_route, junction_route, right_normal, turn_option


def test_right_normal_is_south_when_heading_east():
    # CARLA left-handed frame: x east, y south, yaw clockwise -> the right of east is +y.
    assert np.allclose(right_normal(0.0), [0.0, 1.0])
    assert np.allclose(right_normal(np.pi / 2), [-1.0, 0.0])


def test_turn_options_follow_clockwise_yaw():
    assert turn_option(0.0, np.pi / 2) == ROAD_OPTION["RIGHT"]
    assert turn_option(0.0, -np.pi / 2) == ROAD_OPTION["LEFT"]
    assert turn_option(0.0, 0.05) == ROAD_OPTION["STRAIGHT"]


def test_lanes_are_dense_keep_right_and_connect_through_the_junction():
    net = build_network(3, lanes=2)
    for lane in net.lanes.values():
        step = np.linalg.norm(np.diff(lane.points, axis=0), axis=1)
        assert np.all(step <= 1.0 + 1e-6) and step[:-1].min() > 0.99
    west = net.arm_by_heading(180)
    inner_in = net.lanes[west.incoming_lanes[0]]
    # The west arm's incoming lanes drive east on the south (+y, right-hand) side of its centre line.
    assert inner_in.points[-1, 0] > inner_in.points[0, 0]
    assert inner_in.points[-1, 1] == pytest.approx(1.75, abs=1e-6)
    assert net.lanes[west.incoming_lanes[1]].points[-1, 1] == pytest.approx(5.25, abs=1e-6)
    # Right turns only from the outer lane, left turns only from the inner lane.
    options_inner = {net.lanes[c].road_option for c in inner_in.successors}
    options_outer = {net.lanes[c].road_option for c in net.lanes[west.incoming_lanes[1]].successors}
    assert options_inner == {ROAD_OPTION["LEFT"], ROAD_OPTION["STRAIGHT"]}
    assert options_outer == {ROAD_OPTION["RIGHT"], ROAD_OPTION["STRAIGHT"]}
    kinds = {m.type for m in net.lane_markings}
    assert {"Center", "Broken", "Solid"} <= kinds
    assert net.town == "EmbeddedTown03"


def test_route_commands_bounds_and_length():
    net = build_network(0, lanes=1, curvature=1 / 100)
    route = junction_route(net, 180, 270, start_s=50.0, end_trim=60.0)
    assert 150 < route.length < 300
    assert ROAD_OPTION["LEFT"] in set(route.road_option[route.in_junction])
    assert set(route.road_option[~route.in_junction]) == {ROAD_OPTION["LANEFOLLOW"]}
    assert np.isinf(route.lane_lo[route.in_junction]).all()
    # One lane per direction: the centre line is the left bound, kerb + 0.5 m the right one.
    assert route.lane_lo[0] == pytest.approx(-1.75) and route.lane_hi[0] == pytest.approx(2.25)
    # Exit heading is north (yaw -90 deg) after a left turn from the west arm (driving east).
    assert abs(route.yaw[35 + int(np.argmax(route.in_junction))] + np.pi / 2) < 0.05


def test_lane_change_route_moves_one_lane_and_is_labelled():
    net = build_network(1, lanes=2)
    west, east = net.arm_by_heading(180), net.arm_by_heading(0)
    src, dst = west.incoming_lanes[1], east.outgoing_lanes[1]
    conn = net.connector(src, dst)
    route = build_route(net, [src, conn.id, dst], lane_changes=[(220.0, east.outgoing_lanes[0])])
    changing = route.road_option == ROAD_OPTION["CHANGELANELEFT"]
    assert changing.sum() >= 19
    assert route.points[-1, 1] - route.points[150, 1] == pytest.approx(-3.5, abs=0.05)


def test_bad_parameters_name_the_field():
    with pytest.raises(UserError, match="lanes"):
        build_network(0, lanes=5)
    with pytest.raises(UserError, match="curvature"):
        build_network(0, curvature=0.1)
    with pytest.raises(UserError, match="cannot turn"):
        junction_route(build_network(0, lanes=2), 180, 90, lane_index=0)
