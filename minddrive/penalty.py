"""A route's leaderboard scores (leaderboard 2.0 / Bench2Drive, docs/bench2drive.md#route-score): the infraction penalty
product and the composed score. One definition for the records the simulators write (``minddrive.sim.records``)
and for ``minddrive score`` recomputing them from real results (``minddrive.eval.scoring``)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from minddrive.constants import PENALTY_COEFFICIENTS


def penalty_product(infractions: Mapping[str, Sequence], outside_lanes_percentages: Iterable[float] = ()) -> float:
    """One coefficient per infraction event (``PENALTY_COEFFICIENTS``), times ``1 - pct / 100`` per
    outside-route-lanes event."""
    penalty = 1.0
    for key, coefficient in PENALTY_COEFFICIENTS.items():
        penalty *= coefficient ** len(infractions.get(key, ()))
    for percentage in outside_lanes_percentages:
        penalty *= 1.0 - percentage / 100.0
    return penalty


def route_scores(score_route: float, penalty: float) -> dict[str, float]:
    """A RouteRecord's ``scores``, rounded as the leaderboard writes them."""
    return {"score_route": round(score_route, 6), "score_penalty": round(penalty, 6),
            "score_composed": round(max(score_route * penalty, 0.0), 6)}
