"""Paired per-route comparison of result JSONs (``minddrive compare``)."""

import json

import pytest

from minddrive.cli import main
from minddrive.eval.compare import paired_route_comparison, pooled_comparison


def _result(path, scores: dict[str, float]):
    records = [{"route_id": r, "scores": {"score_composed": s}} for r, s in scores.items()]
    path.write_text(json.dumps({"_checkpoint": {"records": records}}))
    return path


def test_paired_gain_is_per_shared_route_with_an_interval(tmp_path):
    base = _result(tmp_path / "il.json", {"r0": 50.0, "r1": 60.0, "r2": 70.0, "only_il": 0.0})
    run = _result(tmp_path / "rl.json", {"r0": 60.0, "r1": 60.0, "r2": 90.0, "only_rl": 100.0})
    c = paired_route_comparison(base, run)
    assert c["routes"] == 3 and c["mean_gain"] == 10.0  # (10 + 0 + 20) / 3; unshared routes ignored
    assert c["wins"] == 2 and c["losses"] == 0
    assert 0.0 <= c["ci95"][0] <= 10.0 <= c["ci95"][1] <= 20.0


def test_pooling_keeps_the_seed_spread_in_the_wider_interval(tmp_path):
    routes = [f"r{i}" for i in range(40)]
    base = _result(tmp_path / "il.json", {r: 50.0 for r in routes})
    # one seed without effect, two with +10 on every route
    runs = [_result(tmp_path / f"s{k}.json", {r: 50.0 + gain for r in routes}) for k, gain in enumerate((0, 10, 10))]
    p = pooled_comparison(base, runs)
    assert p["runs"] == 3 and p["routes"] == 40 and p["mean_gain"] == pytest.approx(6.67, abs=0.01)
    assert p["run_gains"] == [0.0, 10.0, 10.0] and p["run_gain_std"] == pytest.approx(5.77, abs=0.01)
    # every route gains the same 6.67 on average: no spread over routes; over seeds it spans 0 .. 10
    assert p["ci95_over_routes"] == [6.67, 6.67]
    assert p["ci95_over_runs_and_routes"][0] == 0.0 and p["ci95_over_runs_and_routes"][1] == 10.0


def test_cli_prints_each_run_and_the_pool_and_rejects_a_non_result_file(tmp_path, capsys):
    base = _result(tmp_path / "il.json", {"a": 10.0, "b": 20.0})
    runs = [_result(tmp_path / f"s{k}.json", {"a": 10.0 + k, "b": 20.0 + k}) for k in (1, 3)]
    assert main(["compare", str(base), *map(str, runs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["mean_gain"] for c in out["per_run"].values()] == [1.0, 3.0] and out["pooled"]["mean_gain"] == 2.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"values": []}))
    assert main(["compare", str(base), str(bad)]) == 2
    assert "bad.json: expected a leaderboard result JSON" in capsys.readouterr().err
