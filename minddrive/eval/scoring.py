"""Bench2Drive closed-loop scoring, computed the way Bench2Drive's own tools compute it.

Reading order, top to bottom:

1. loading      -- a merged result file, a raw leaderboard checkpoint, or a folder of raw
                   checkpoints merged like ``tools/merge_route_json.py``
                   (docs/bench2drive.md#driving-score-and-success-rate);
2. validation   -- records missing keys or repeating a route id are skipped with a warning;
3. per route    -- the success rule, the scenario type, the leaderboard penalty;
4. aggregates   -- Driving Score / Success Rate over two denominators, infractions per km
                   (docs/bench2drive.md#per-process-global-record), Driving Efficiency
                   (docs/bench2drive.md#efficiency), Driving Smoothness from each route's ``metric_info.json``,
                   the five abilities (docs/bench2drive.md#abilities).

Two denominators (docs/bench2drive.md#driving-score-and-success-rate): Bench2Drive divides DS and SR by the
size of the route set (220), so a missing route counts as 0; papers usually divide by the routes evaluated. Both are
always computed. The leaderboard's fields (``status``, infraction lists, ``scores``) are
authoritative; ``num_infractions`` is never read because real files disagree with their lists.

Traffic_Signs: Bench2Drive credits a route that drove ~8 m past its first junction without
running a red light or stop sign; finding that junction needs the town's map. Without it we report
the strict value (no junction credit), flagged ``traffic_signs_strict``; ``minddrive sim-eval`` writes
the table for its routes (``routes/junction_table.json``) and applies it. Given a table of each
route's ``junction_completion`` (route id -> fraction of the route, precomputed once with CARLA's
GlobalRoutePlanner) the credit is applied with v0.0.4 or v0.0.3 semantics (docs/bench2drive.md#abilities).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from minddrive.constants import ABILITIES, ABILITY_NAMES, INFRACTION_KEYS
from minddrive.errors import UserError
from minddrive.penalty import penalty_product, route_scores
from minddrive.utils.io import read_json

OFFICIAL_ROUTE_COUNT = 220  # hard-coded by tools/merge_route_json.py
SUCCESS_STATUSES = ("Completed", "Perfect")
# Infractions that do not fail a route (B2D v0.0.2+: min speed only feeds Driving Efficiency).
NON_FAILING_INFRACTIONS = ("min_speed_infractions",)
# Efficiency ignores min-speed checkpoints above this percentage (efficiency_smoothness_benchmark.py).
EFFICIENCY_MAX_PERCENT = 1000.0

# Keys a record must carry for every metric here (dotted = nested).
REQUIRED_KEYS = ("route_id", "scenario_name", "status", "infractions",
                 "scores.score_route", "scores.score_composed", "meta.route_length")

_PERCENT = re.compile(r"\b\d+\.?\d*%")  # the efficiency tool's regex
_OUTSIDE_LANES = re.compile(r"for about (?P<metres>[-\d.eE+]+) meters \((?P<percent>[-\d.eE+]+)% of the completed route\)")


# --------------------------------------------------------------------------------------- loading
def load_records(path: str | os.PathLike) -> list[dict]:
    """Route records from a result file, or from every checkpoint JSON in a folder.

    A folder is merged as ``merge_route_json.py`` does: every ``*.json`` except names
    containing ``merged.json``, records concatenated in file-name order, ``index`` dropped.
    Malformed or truncated JSON, or a file without ``_checkpoint.records``, is a UserError.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if "merged.json" not in p.name)
        if not files:
            raise UserError(f"{path}: no result *.json files in this folder (names containing 'merged.json' are skipped)")
        return [record for file in files for record in _records_of_file(file)]
    if not path.exists():
        raise UserError(f"{path}: result file or folder not found")
    return _records_of_file(path)


def _records_of_file(path: Path) -> list[dict]:
    data = read_json(path)
    checkpoint = data.get("_checkpoint") if isinstance(data, dict) else None
    records = checkpoint.get("records") if isinstance(checkpoint, dict) else None
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a leaderboard result JSON with a '_checkpoint.records' list")
    # Merged files carry no 'index'; raw ones do and it means nothing outside its process.
    return [{k: v for k, v in r.items() if k != "index"} if isinstance(r, dict) else r for r in records]


def read_route_types(xml_path: str | os.PathLike) -> dict[str, str]:
    """Route id -> type of its first ``<scenario>``, from a leaderboard route XML (docs/bench2drive.md#route-files).

    A route without scenarios gets ``NoScenario``, which belongs to no ability.
    """
    from minddrive.sim.routes import parse_routes  # the one route-file parser (imports numpy only)

    return {route.id: route.scenario_type for route in parse_routes(xml_path)}


# ------------------------------------------------------------------------------------ validation
def validate_records(records: Iterable[Any]) -> tuple[list[dict], list[str]]:
    """Keep the usable records; return them with one warning per record skipped.

    A record missing a required key or infraction list is skipped. For a repeated route id the
    FIRST record is kept: ``merge_route_json.py`` would count both (inflating DS/SR), and the
    first is what a resumed leaderboard run had already finished when it wrote the repeat.
    """
    kept: list[dict] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for position, record in enumerate(records):
        name = record.get("route_id", f"record #{position}") if isinstance(record, dict) else f"record #{position}"
        problem = _record_problem(record)
        if problem:
            warnings.append(f"{name}: {problem}; skipped")
        elif record["route_id"] in seen:
            warnings.append(f"{name}: duplicate route_id (record #{position}); kept the first")
        else:
            seen.add(record["route_id"])
            kept.append(record)
    return kept, warnings


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for dotted in REQUIRED_KEYS:
        node: Any = record
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return f"missing key '{dotted}'"
            node = node[part]
    for key in INFRACTION_KEYS:
        if not isinstance(record["infractions"].get(key), list):
            return f"missing infraction list 'infractions.{key}'"
    for dotted in ("scores.score_route", "scores.score_composed", "meta.route_length"):
        outer, inner = dotted.split(".")
        if not _is_number(record[outer][inner]):
            return f"'{dotted}' is not a number ({record[outer][inner]!r})"
    if not isinstance(record["route_id"], str) or record["route_id"].count("_") < 1:
        return f"'route_id' is not like 'RouteScenario_<id>_rep<r>' ({record['route_id']!r})"
    for message in record["infractions"]["outside_route_lanes"]:
        if not _OUTSIDE_LANES.search(str(message)):
            return f"unreadable outside_route_lanes message {message!r}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------------------- per route
def route_succeeded(record: Mapping) -> bool:
    """Bench2Drive success: finished (Completed/Perfect) with no infraction other than min speed."""
    return record["status"] in SUCCESS_STATUSES and not any(
        events for key, events in record["infractions"].items() if key not in NON_FAILING_INFRACTIONS)


def route_number(route_id: str) -> str:
    """'RouteScenario_1711_rep0' -> '1711' (the XML id), as ability_benchmark.py splits it."""
    return route_id.split("_")[1]


def scenario_type_of(record: Mapping) -> str:
    """'ParkingCutIn_1' -> 'ParkingCutIn'; names without a numeric suffix are already types."""
    head, _, tail = record["scenario_name"].rpartition("_")
    return head if head and tail.isdigit() else record["scenario_name"]


def outside_lanes_fraction(message: str) -> tuple[float, float]:
    """(metres, percent of the completed route) from an ``outside_route_lanes`` message."""
    match = _OUTSIDE_LANES.search(message)
    if match is None:
        raise UserError(f"outside_route_lanes: unexpected message {message!r}")
    return float(match["metres"]), float(match["percent"])


def recompute_route_scores(record: Mapping) -> dict[str, float]:
    """``score_penalty`` / ``score_composed`` from the infraction lists.

    Leaderboard 2.0 rules: docs/bench2drive.md#route-score.

    Exact except with ``outside_route_lanes``, whose message rounds the percentage to 2
    decimals (|error| <= ~5e-5 on real records).
    """
    outside = [outside_lanes_fraction(message)[1] for message in record["infractions"].get("outside_route_lanes", ())]
    return route_scores(float(record["scores"]["score_route"]), penalty_product(record["infractions"], outside))


def route_efficiency(record: Mapping) -> float | None:
    """Mean ego/traffic speed % over the min-speed checkpoints (<= 1000 %); None if there are none."""
    values = []
    for message in record["infractions"]["min_speed_infractions"]:
        match = _PERCENT.search(message)
        if match is not None:
            values.append(float(match.group()[:-1]))
    values = [v for v in values if v <= EFFICIENCY_MAX_PERCENT]
    # Upstream divides by zero when every value is > 1000; such a route is left out here.
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------------- smoothness
#: efficiency_smoothness_benchmark.py's comfort bounds (nuPlan's): acceleration m/s^2, jerk m/s^3, yaw rad/s(^2)
COMFORT_BOUNDS = dict(lon_accel=(-4.05, 2.40), lat_accel=(-4.89, 4.89), jerk=(-8.37, 8.37), lon_jerk=(-4.13, 4.13),
                      yaw_accel=(-1.93, 1.93), yaw_rate=(-0.95, 0.95))
SMOOTHNESS_SEGMENT = 20         # ticks per judged segment
SMOOTHNESS_WINDOW, SMOOTHNESS_POLY, SMOOTHNESS_DT = 7, 2, 0.1


def segment_comfortable(series: Mapping[str, Any]) -> bool:
    """One segment within every comfort bound, the tool's way.

    Savitzky-Golay smoothing (window 7, order 2) of the longitudinal and lateral acceleration (world
    acceleration onto the forward / right vectors, x-y only), of its magnitude and of the z angular
    velocity (unwrapped); jerks are the filter's first derivative over 0.1 s. As in the tool, the
    "yaw acceleration" is the smoothed angular velocity itself (not its derivative), and the angular
    velocity is compared with rad/s bounds as the file holds it (CARLA writes deg/s).
    """
    from scipy.signal import savgol_filter

    acc = np.asarray(series["acceleration"], dtype=np.float64)[:, :2]
    forward = np.asarray(series["forward_vector"], dtype=np.float64)[:, :2]
    right = np.asarray(series["right_vector"], dtype=np.float64)[:, :2]
    yaw_rate = np.asarray(series["angular_velocity"], dtype=np.float64)[:, 2]
    window = min(SMOOTHNESS_WINDOW, len(acc))
    if SMOOTHNESS_POLY >= window:
        raise UserError(f"smoothness: a segment of {len(acc)} ticks is too short for the filter")
    yaw_rate = yaw_rate - 2 * np.pi * np.concatenate([[0.0], np.cumsum(np.round(np.diff(yaw_rate) / (2 * np.pi)))])
    smooth = lambda v, **kw: savgol_filter(v, window_length=window, polyorder=SMOOTHNESS_POLY, axis=-1, **kw)  # noqa: E731
    lon, lat = smooth(np.einsum("ij,ij->i", acc, forward)), smooth(np.einsum("ij,ij->i", acc, right))
    magnitude = smooth(np.hypot(acc[:, 0], acc[:, 1]))
    values = dict(lon_accel=lon, lat_accel=lat, jerk=smooth(magnitude, deriv=1, delta=SMOOTHNESS_DT),
                  lon_jerk=smooth(lon, deriv=1, delta=SMOOTHNESS_DT), yaw_accel=smooth(yaw_rate), yaw_rate=smooth(yaw_rate))
    return all(bool(np.all((v > COMFORT_BOUNDS[k][0]) & (v < COMFORT_BOUNDS[k][1]))) for k, v in values.items())


def route_smoothness(series: Mapping[str, Any]) -> float:
    """Fraction of a route's full 20-tick segments that are comfortable (a route of <= 20 ticks: one segment)."""
    n = len(series["angular_velocity"])
    if n <= SMOOTHNESS_SEGMENT:
        return float(segment_comfortable(series))
    judged = [segment_comfortable({k: np.asarray(v)[start:start + SMOOTHNESS_SEGMENT] for k, v in series.items()})
              for start in range(0, n - SMOOTHNESS_SEGMENT + 1, SMOOTHNESS_SEGMENT)]
    return sum(judged) / len(judged)


def smoothness_of_records(records: Sequence[Mapping], metric_dir: str | os.PathLike) -> tuple[float | None, list[str]]:
    """Driving Smoothness (0-100): the mean route smoothness over records with ``metric_dir/<save_name>/metric_info.json``."""
    from minddrive.sim.metric_info import METRIC_INFO_FILE, read_metric_info

    values, missing = [], []
    for record in records:
        path = Path(metric_dir) / str(record.get("save_name")) / METRIC_INFO_FILE
        if not path.is_file():
            missing.append(record["route_id"])
            continue
        series = read_metric_info(path)
        if len(series["angular_velocity"]) == 0:
            missing.append(record["route_id"])
            continue
        values.append(route_smoothness(series))
    return (100.0 * sum(values) / len(values) if values else None), missing


# ------------------------------------------------------------------------------------ aggregates
@dataclass
class ScoreReport:
    """Bench2Drive metrics of one set of route records. Percentages are 0-100."""

    num_routes: int                      # routes evaluated (usable records)
    num_routes_expected: int             # the official denominator (route-set size, or num_routes)
    missing_routes: int                  # expected routes without a record (each scores 0)
    driving_score: float                 # Σ score_composed / num_routes_expected
    success_rate: float                  # #success / num_routes_expected × 100
    driving_score_evaluated: float       # ... / num_routes (what papers print)
    success_rate_evaluated: float
    route_completion: float              # mean score_route, missing routes as 0
    route_completion_evaluated: float
    infraction_penalty_evaluated: float | None  # mean score_penalty over evaluated routes (where present)
    efficiency: float | None             # Driving Efficiency; None without min-speed checkpoints
    efficiency_routes: int               # routes that entered the efficiency mean
    km_driven: float                     # Σ route_length × completion, km (leaderboard global_record)
    infractions_per_km: dict[str, float]  # count / km_driven; outside_route_lanes in km driven outside
    infraction_counts: dict[str, int]
    abilities: dict[str, float | None]   # success rate per ability; None if no route of it was evaluated
    ability_counts: dict[str, list[int]]  # [successes, routes] per ability
    abilities_mean: float | None         # mean of the five (None if any is None)
    traffic_signs_strict: bool           # True: Traffic_Signs without the map-based junction credit
    traffic_signs_version: str | None    # junction-credit semantics applied ("0.0.3" / "0.0.4"); None if strict
    status_counts: dict[str, int]
    successful_route_ids: list[str]
    missing_route_ids: list[str] = field(default_factory=list)  # known only with a route file
    smoothness: float | None = None      # Driving Smoothness, 0-100; None without metric_info.json files
    smoothness_routes: int = 0           # routes whose metric_info.json entered it
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_records(records: Sequence[Mapping], expected: int | None = None,
                  route_types: Mapping[str, str] | None = None,
                  junction_completion: Mapping[str, float] | None = None,
                  traffic_signs_version: str = "0.0.4", metric_dir: str | os.PathLike | None = None) -> ScoreReport:
    """Score in-memory route records (the leaderboard ``RouteRecord`` dicts, docs/bench2drive.md#result-files).

    ``expected``: size of the route set for the official denominator (default: the routes
    evaluated). ``route_types``: route id -> scenario type from a route XML
    (:func:`read_route_types`); it also fixes the route set, so records of other routes are
    skipped and ``expected`` defaults to its size. ``junction_completion``: route id -> fraction
    of the route ~8 m past its first junction, enabling Traffic_Signs junction credit with
    ``traffic_signs_version`` semantics. ``metric_dir``: the folder holding ``<save_name>/metric_info.json``
    per route, for Driving Smoothness. Unusable records are skipped with a warning in
    ``report.warnings``; nothing usable is a UserError.
    """
    records, warnings = validate_records(records)
    missing_ids: list[str] = []
    if route_types is not None:
        outside = [r for r in records if route_number(r["route_id"]) not in route_types]
        if outside:  # one line, not one per record: scoring a 220-route result against a subset is normal
            names = ", ".join(r["route_id"] for r in outside[:3]) + (", ..." if len(outside) > 3 else "")
            warnings.append(f"{len(outside)} records of routes not in the route file skipped ({names})")
        records = [r for r in records if route_number(r["route_id"]) in route_types]
        evaluated = {route_number(r["route_id"]) for r in records}
        missing_ids = [route_id for route_id in route_types if route_id not in evaluated]
        expected = len(route_types) if expected is None else expected
    if not records:
        raise UserError("no usable route records" + (f" ({warnings[0]})" if warnings else ""))
    n = len(records)
    expected = n if expected is None else int(expected)
    if expected < n:
        raise UserError(f"--expected {expected}: smaller than the {n} routes evaluated")

    successes = [r for r in records if route_succeeded(r)]
    composed = sum(float(r["scores"]["score_composed"]) for r in records)
    completion = sum(float(r["scores"]["score_route"]) for r in records)
    penalties = [float(r["scores"]["score_penalty"]) for r in records if _is_number(r["scores"].get("score_penalty"))]
    km_driven, per_km, counts = infraction_rates(records)
    efficiencies = [e for e in map(route_efficiency, records) if e is not None]
    types = [route_types[route_number(r["route_id"])] if route_types is not None else scenario_type_of(r)
             for r in records]
    ability_counts = ability_success_counts(types, [route_succeeded(r) for r in records])
    if junction_completion is not None:
        ability_counts["Traffic_Signs"] = traffic_signs_with_junction_credit(
            records, types, junction_completion, traffic_signs_version)
    abilities = {name: (100.0 * s / d if d else None) for name, (s, d) in ability_counts.items()}
    smoothness, no_metric_info = smoothness_of_records(records, metric_dir) if metric_dir is not None else (None, [])
    if no_metric_info and smoothness is not None:   # none at all: a run without SAVE_PATH files, reported n/a
        warnings.append(f"{len(no_metric_info)} routes without metric_info.json left out of Driving Smoothness "
                        f"(e.g. {no_metric_info[0]})")
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1

    return ScoreReport(
        num_routes=n,
        num_routes_expected=expected,
        missing_routes=expected - n,
        driving_score=composed / expected,
        success_rate=100.0 * len(successes) / expected,
        driving_score_evaluated=composed / n,
        success_rate_evaluated=100.0 * len(successes) / n,
        route_completion=completion / expected,
        route_completion_evaluated=completion / n,
        infraction_penalty_evaluated=sum(penalties) / len(penalties) if penalties else None,
        efficiency=sum(efficiencies) / len(efficiencies) if efficiencies else None,
        efficiency_routes=len(efficiencies),
        km_driven=km_driven,
        infractions_per_km=per_km,
        infraction_counts=counts,
        abilities=abilities,
        ability_counts={name: list(sd) for name, sd in ability_counts.items()},
        abilities_mean=(None if None in abilities.values() else sum(abilities.values()) / len(abilities)),
        traffic_signs_strict=junction_completion is None,
        traffic_signs_version=None if junction_completion is None else traffic_signs_version,
        status_counts=dict(sorted(statuses.items())),
        successful_route_ids=[r["route_id"] for r in successes],
        missing_route_ids=missing_ids,
        warnings=warnings,
        smoothness=smoothness,
        smoothness_routes=len(records) - len(no_metric_info) if smoothness is not None else 0,
    )


def infraction_rates(records: Sequence[Mapping]) -> tuple[float, dict[str, float], dict[str, int]]:
    """(km driven, infractions per km, counts) as the leaderboard's ``global_record`` computes them.

    km driven = max(Σ route_length/1000 × score_route/100, 0.001); each rate = count / km,
    rounded to 3 decimals; ``outside_route_lanes`` is instead the km driven outside route lanes.
    """
    km_driven = max(sum(r["meta"]["route_length"] / 1000 * r["scores"]["score_route"] / 100 for r in records), 0.001)
    counts = {key: sum(len(r["infractions"][key]) for r in records) for key in INFRACTION_KEYS}
    rates = {key: round(count / km_driven, 3) for key, count in counts.items()}
    rates["outside_route_lanes"] = round(sum(outside_lanes_fraction(m)[0] / 1000 for r in records
                                             for m in r["infractions"]["outside_route_lanes"]), 3)
    return km_driven, rates, counts


def ability_success_counts(scenario_types: Sequence[str | None], succeeded: Sequence[bool]) -> dict[str, tuple[int, int]]:
    """[successes, routes] per ability; a route counts toward every ability listing its type.

    docs/bench2drive.md#abilities.
    """
    counts = {}
    for name in ABILITY_NAMES:
        members = [ok for kind, ok in zip(scenario_types, succeeded) if kind in ABILITIES[name]]
        counts[name] = (sum(members), len(members))
    return counts


def traffic_signs_with_junction_credit(records: Sequence[Mapping], scenario_types: Sequence[str],
                                       junction_completion: Mapping[str, float], version: str) -> tuple[int, int]:
    """[score, routes] of Traffic_Signs with Bench2Drive's junction credit (ability_benchmark.py).

    A route passes its junction if it drove beyond ``junction_completion`` of the route without a
    red-light or stop-sign infraction. v0.0.4: a failed route that passes earns the success it
    lacked. v0.0.3 (all published v0.0.3 tables): every route is counted twice, once for success
    and once for the junction.
    """
    if version not in ("0.0.3", "0.0.4"):
        raise UserError(f"traffic signs version {version!r}: expected '0.0.3' or '0.0.4'")
    score = routes = 0
    for record, kind in zip(records, scenario_types):
        if kind not in ABILITIES["Traffic_Signs"]:
            continue
        threshold = junction_completion.get(route_number(record["route_id"]))
        if threshold is None:
            raise UserError(f"junction table: no junction_completion for Traffic_Signs route {record['route_id']}")
        succeeded = route_succeeded(record)
        passes = (record["scores"]["score_route"] / 100 > threshold
                  and not record["infractions"]["red_light"] and not record["infractions"]["stop_infraction"])
        if version == "0.0.4":
            score, routes = score + (succeeded or passes), routes + 1
        else:
            score, routes = score + succeeded + passes, routes + 2
    return score, routes


def read_junction_table(path: str | os.PathLike) -> dict[str, float]:
    """A JSON object: route id -> junction_completion (fraction of the route, 0..1)."""
    table = read_json(path)
    if not isinstance(table, dict) or not all(_is_number(v) for v in table.values()):
        raise UserError(f"{path}: expected a JSON object mapping route id to junction_completion (a number)")
    return {str(k): float(v) for k, v in table.items()}


def score_path(path: str | os.PathLike, expected: int | None = None, routes_xml: str | os.PathLike | None = None,
               junction_table: str | os.PathLike | None = None, traffic_signs_version: str = "0.0.4",
               metric_dir: str | os.PathLike | None = None) -> ScoreReport:
    """Load a result file or folder and score it (``minddrive score``).

    Driving Smoothness reads ``metric_dir/<save_name>/metric_info.json`` (default: the result's folder,
    where the leaderboard's ``SAVE_PATH`` and ``minddrive eval`` / ``sim-eval`` put them).
    """
    if metric_dir is None:
        metric_dir = path if Path(path).is_dir() else Path(path).parent
    route_types = read_route_types(routes_xml) if routes_xml is not None else None
    junctions = read_junction_table(junction_table) if junction_table is not None else None
    return score_records(load_records(path), expected=expected, route_types=route_types,
                         junction_completion=junctions, traffic_signs_version=traffic_signs_version,
                         metric_dir=metric_dir)


__all__ = ["OFFICIAL_ROUTE_COUNT", "ScoreReport", "load_records", "read_route_types", "validate_records",
           "route_succeeded", "route_number", "scenario_type_of", "recompute_route_scores", "route_efficiency",
           "infraction_rates", "ability_success_counts", "route_smoothness", "smoothness_of_records", "traffic_signs_with_junction_credit", "read_junction_table",
           "score_records", "score_path"]
