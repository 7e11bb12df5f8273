"""``minddrive compare BASELINE RUN [RUN ...] [--json]``: paired per-route Driving Score comparison.

Closed-loop scores of two checkpoints on the same routes differ route by route far more than their means
do, so a gain is judged per route: RL - IL on each shared route, a bootstrap 95 % interval of the mean.
With several runs (training seeds of one setting) it also pools them: the per-route gain averaged over
runs with an interval over routes, and a two-level bootstrap that resamples the runs too, which is the
honest interval when the seed-to-seed spread is large.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from minddrive.errors import UserError
from minddrive.eval.scoring import load_records

RESAMPLES = 5000


class RouteScores(dict):
    """route_id -> composed Driving Score, and the result file or folder it was read from (for messages)."""

    def __init__(self, scores: dict[str, float], source: str | Path):
        super().__init__(scores)
        self.source = str(source)


def route_scores(path: str | Path) -> RouteScores:
    """The composed Driving Score of every route of a result file or folder of checkpoints, read as
    ``minddrive score`` reads it; for a repeated route the first record counts, as there."""
    scores: dict[str, float] = {}
    for record in load_records(path):
        try:
            scores.setdefault(record["route_id"], float(record["scores"]["score_composed"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: a record without 'route_id' or a numeric 'scores.score_composed'") from None
    return RouteScores(scores, path)


def _scores(source: str | Path | RouteScores) -> RouteScores:
    return source if isinstance(source, RouteScores) else route_scores(source)


def _interval(means: np.ndarray) -> list[float]:
    low, high = np.percentile(means, [2.5, 97.5])
    return [round(float(low), 2), round(float(high), 2)]


def paired_route_comparison(baseline: str | Path | RouteScores, run: str | Path | RouteScores, seed: int = 0,
                            resamples: int = RESAMPLES) -> dict[str, Any]:
    """Per-route DS differences (run - baseline) on the shared routes: mean, a bootstrap 95 % interval of
    the mean, and the routes where the run is better / worse (by more than 0.01 DS). Each side is a result
    path or its ``route_scores``."""
    base, other = _scores(baseline), _scores(run)
    routes = sorted(set(base) & set(other))
    if not routes:
        raise UserError(f"{other.source}: no route in common with {base.source}")
    diff = np.array([other[r] - base[r] for r in routes])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(1)
    return dict(routes=len(routes), mean_gain=round(float(diff.mean()), 2), ci95=_interval(means),
                wins=int((diff > 0.01).sum()), losses=int((diff < -0.01).sum()))


def pooled_comparison(baseline: str | Path | RouteScores, runs: Sequence[str | Path | RouteScores], seed: int = 0,
                      resamples: int = RESAMPLES) -> dict[str, Any]:
    """Several runs (e.g. training seeds) against one baseline on the routes all of them share."""
    base = _scores(baseline)
    scores = [_scores(r) for r in runs]
    routes = sorted(set(base).intersection(*scores))
    if not routes:
        raise UserError(f"no route is shared by {base.source} and all {len(runs)} runs")
    gains = np.array([[s[r] - base[r] for r in routes] for s in scores])  # runs x routes
    rng = np.random.default_rng(seed)
    per_route = gains.mean(0)
    over_routes = per_route[rng.integers(0, len(routes), size=(resamples, len(routes)))].mean(1)
    run_draws = rng.integers(0, len(runs), size=(resamples, len(runs)))
    route_draws = rng.integers(0, len(routes), size=(resamples, len(routes)))
    # gains[run_draws][:, :, route_draws] per resample, without the (resamples x runs x routes) index tensor
    over_runs_and_routes = np.array([gains[np.ix_(run_draws[i], route_draws[i])].mean() for i in range(resamples)])
    run_means = gains.mean(1)
    return dict(runs=len(runs), routes=len(routes), mean_gain=round(float(gains.mean()), 2),
                run_gains=[round(float(g), 2) for g in run_means],
                run_gain_std=round(float(run_means.std(ddof=1)), 2) if len(runs) > 1 else 0.0,
                ci95_over_routes=_interval(over_routes), ci95_over_runs_and_routes=_interval(over_runs_and_routes))


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("baseline", metavar="BASELINE",
                        help="result JSON (or folder of checkpoints) of the reference checkpoint, e.g. the IL one")
    parser.add_argument("runs", metavar="RUN", nargs="+",
                        help="result JSON(s) or folders on the same routes, e.g. one per RL seed")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def run(args: argparse.Namespace) -> int:
    base = route_scores(args.baseline)  # each file read once
    runs = [route_scores(path) for path in args.runs]
    per_run = {scores.source: paired_route_comparison(base, scores, seed=args.seed) for scores in runs}
    pooled = pooled_comparison(base, runs, seed=args.seed) if len(runs) > 1 else None
    if args.json:
        print(json.dumps(dict(per_run=per_run, pooled=pooled), indent=2))
        return 0
    for name, c in per_run.items():
        print(f"{name}: {c['mean_gain']:+.2f} DS over {c['routes']} routes, 95 % interval "
              f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], better on {c['wins']}, worse on {c['losses']}")
    if pooled:
        print(f"pooled over {pooled['runs']} runs: {pooled['mean_gain']:+.2f} DS (per run {pooled['run_gains']}, "
              f"std {pooled['run_gain_std']:.2f}); 95 % interval over routes {pooled['ci95_over_routes']}, "
              f"over runs and routes {pooled['ci95_over_runs_and_routes']}")
    return 0
