"""Leaderboard ``RouteRecord`` dicts built from an episode's infractions.

Format and scores: docs/bench2drive.md#result-files and docs/bench2drive.md#route-score.

Keys and their order follow the leaderboard's ``vars(RouteRecord)``; scores follow
``statistics_manager.compute_route_statistics`` with Bench2Drive's penalty table, so
``minddrive score`` reads these records exactly as it reads real Bench2Drive results.
"""

from __future__ import annotations

from minddrive.constants import INFRACTION_KEYS
from minddrive.penalty import penalty_product, route_scores

STATUS_COMPLETED, STATUS_PERFECT, STATUS_FAILED = "Completed", "Perfect", "Failed"
#: the leaderboard's ``sensors`` field (``sensors_to_icons`` of the agent's rig): six RGB cameras, IMU, GNSS, speedometer
RIG_SENSOR_ICONS = ["carla_camera"] * 6 + ["carla_imu", "carla_gnss", "carla_speedometer"]
#: the time suffix the leaderboard evaluator ends each ``save_name`` with
SAVE_NAME_TIME_FORMAT = "%m_%d_%H_%M_%S"
FAIL_MESSAGES = {"route_timeout": "Agent timed out", "route_dev": "Agent deviated from the route",
                 "vehicle_blocked": "Agent got blocked", "tick_limit": "TickRuntime"}


def score_penalty(infractions: dict[str, list[str]], outside_lanes_percentage: float = 0.0) -> float:
    """Product of one coefficient per event, times (1 - pct/100) for outside route lanes (the simulators
    record at most one such event, carrying the route's whole percentage, as the leaderboard does)."""
    return penalty_product(infractions, [outside_lanes_percentage] if infractions.get("outside_route_lanes") else [])


def route_status(score_route: float, infractions: dict[str, list[str]], failure: str | None) -> str:
    """Leaderboard status: Completed/Perfect when the target was reached, else Failed[ - reason]."""
    if score_route >= 100.0:
        return STATUS_COMPLETED if sum(len(v) for v in infractions.values()) else STATUS_PERFECT
    return f"{STATUS_FAILED} - {failure}" if failure else STATUS_FAILED


def route_record(*, index: int, route_id: str, scenario_name: str, weather_id: int | str | None, town: str,
                 infractions: dict[str, list[str]], route_completion: float, outside_lanes_percentage: float,
                 failure: str | None, route_length: float, duration_game: float, duration_system: float,
                 save_name: str | None = None) -> dict:
    """One RouteRecord with exact leaderboard keys, order and rounding."""
    lists = {key: list(infractions.get(key, [])) for key in INFRACTION_KEYS}
    completion = 100.0 if route_completion >= 100.0 else round(route_completion, 2)
    penalty = score_penalty(lists, outside_lanes_percentage)
    return {
        "index": int(index),
        "route_id": route_id,
        "scenario_name": scenario_name,
        "weather_id": None if weather_id is None else str(weather_id),
        "save_name": save_name or f"{route_id}_{town}_{scenario_name}",
        "status": route_status(completion, lists, failure),
        "num_infractions": sum(len(v) for v in lists.values()),
        "infractions": lists,
        "scores": route_scores(completion, penalty),
        "meta": {"route_length": round(route_length, 3), "duration_game": round(duration_game, 3),
                 "duration_system": round(duration_system, 3)},
        "town_name": town,
    }


def save_name(route_id: str, town: str, scenario_name: str, weather_id, when=None) -> str:
    """``<route_id>_<town>_<scenario_name>_<weather_id>_<month_day_hour_min_sec>``, as the leaderboard names a route's folder."""
    from datetime import datetime

    return f"{route_id}_{town}_{scenario_name}_{weather_id}_{(when or datetime.now()).strftime(SAVE_NAME_TIME_FORMAT)}"


def checkpoint(records: list[dict], total: int | None = None) -> dict:
    """A raw leaderboard checkpoint (docs/bench2drive.md#result-files) holding ``records``.

    ``global_record`` is left to the scorer.
    """
    return {
        "_checkpoint": {"global_record": {}, "progress": [len(records), total if total is not None else len(records)],
                        "records": records},
        "entry_status": "Finished",
        "eligible": True,
        "sensors": list(RIG_SENSOR_ICONS),
        "values": [],
        "labels": [],
    }
