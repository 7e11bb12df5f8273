"""The leaderboard's route scores, shared by the simulators' records and ``minddrive score``."""

import pytest

from minddrive.penalty import penalty_product, route_scores


def test_penalty_multiplies_one_coefficient_per_event_and_each_outside_lanes_fraction():
    infractions = {"collisions_pedestrian": ["a", "b"], "red_light": ["c"], "min_speed_infractions": ["d"]}
    assert penalty_product(infractions) == pytest.approx(0.5 ** 2 * 0.7)  # min speed carries no penalty
    assert penalty_product(infractions, [10.0]) == pytest.approx(0.5 ** 2 * 0.7 * 0.9)
    assert penalty_product({}, [10.0, 50.0]) == pytest.approx(0.45) and penalty_product({}) == 1.0


def test_route_scores_round_as_the_leaderboard_and_never_go_below_zero():
    assert route_scores(87.654321987, 0.3333333333) == {"score_route": 87.654322, "score_penalty": 0.333333,
                                                        "score_composed": 29.218107}
    assert route_scores(50.0, -0.1)["score_composed"] == 0.0
