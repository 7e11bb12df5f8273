"""Closed-loop evaluation: leaderboard-format output, resumability, and scoring agreement file vs memory."""

from __future__ import annotations

import json

import pytest

from minddrive.constants import INFRACTION_KEYS
from minddrive.errors import UserError
from minddrive.eval.closed_loop import RESULT_FILE, SCORE_FILE, evaluate, global_record
from minddrive.eval.scoring import score_path, score_records
from minddrive.eval.suite import load_suite


def scripted_record(route, completion: float, collisions: int = 0) -> dict:
    """A simulator-style record (its own naming) whose scores follow the leaderboard's rules."""
    infractions = {key: [] for key in INFRACTION_KEYS}
    infractions["collisions_vehicle"] = [f"Agent collided against object with type=vehicle.x and id={i}"
                                         for i in range(collisions)]
    infractions["min_speed_infractions"] = ["Average speed is 100% of the surrounding traffic's one"]
    penalty = 0.6 ** collisions
    return {"index": 0, "route_id": f"RouteScenario_{route.seed}_rep0", "scenario_name": "whatever",
            "weather_id": "1", "save_name": "", "status": "Completed" if completion >= 100 else "Failed - Agent got blocked",
            "num_infractions": 0, "infractions": infractions,
            "scores": {"score_route": completion, "score_penalty": penalty, "score_composed": completion * penalty},
            "meta": {"route_length": 100.0, "duration_game": 20.0, "duration_system": 1.0}, "town_name": "SimTown"}


class ScriptedDriver:
    """Stands in for PolicyDriver: route k completes 100 % unless k is odd (60 %, one collision)."""

    def __init__(self, crash_after: int | None = None):
        self.driven: list[str] = []
        self.crash_after = crash_after

    def __call__(self, routes, on_record):
        for route in routes:
            if self.crash_after is not None and len(self.driven) == self.crash_after:
                raise RuntimeError("simulated worker crash")
            self.driven.append(route.route_id)
            k = int(route.id)
            on_record(route, scripted_record(route, 60.0 if k % 2 else 100.0, collisions=k % 2))


def test_result_json_is_leaderboard_format_and_scores_identically(tmp_path):
    report = evaluate({}, policy="expert", suite="sim-b2d-mini", out=tmp_path, limit=6, drive=ScriptedDriver(),
                      progress=False)
    data = json.loads((tmp_path / RESULT_FILE).read_text())
    records = data["_checkpoint"]["records"]
    suite = load_suite().head(6)
    assert [r["route_id"] for r in records] == suite.route_ids
    assert [r["index"] for r in records] == list(range(6))
    assert [r["scenario_name"] for r in records] == [f"{r.scenario_type}_1" for r in suite.routes]
    assert list(records[0]) [:11] == ["index", "route_id", "scenario_name", "weather_id", "save_name", "status",
                                      "num_infractions", "infractions", "scores", "meta", "town_name"]
    assert [r["num_infractions"] for r in records[:2]] == [2, 1]   # collision + min-speed; min-speed only
    assert data["entry_status"] == "Finished" and data["_checkpoint"]["progress"] == [6, 6]
    assert data["minddrive"]["suite"]["sha256"] == suite.sha256
    # routes 1,3,5 -> 60 % x 0.6 = 36; routes 2,4,6 -> 100: DS = (3*36 + 3*100)/6 = 68, SR = 50 %
    assert report["driving_score"] == pytest.approx(68.0) and report["success_rate"] == pytest.approx(50.0)
    assert data["_checkpoint"]["global_record"]["scores_mean"]["score_composed"] == pytest.approx(68.0)
    from_file = score_path(tmp_path / RESULT_FILE, expected=6).to_dict()
    in_memory = score_records(records, expected=6).to_dict()
    assert from_file == in_memory == {k: v for k, v in report.items() if k not in ('suite', 'policy', 'failure_reasons')}
    assert report['suite']['sha256'] == suite.sha256 and report['policy'] == 'builtin:expert'
    assert json.loads((tmp_path / SCORE_FILE).read_text())["driving_score"] == pytest.approx(68.0)


def test_crashed_evaluation_resumes_with_the_routes_not_yet_scored(tmp_path):
    crashing = ScriptedDriver(crash_after=3)
    with pytest.raises(RuntimeError, match="simulated worker crash"):
        evaluate({}, policy="expert", out=tmp_path, limit=6, drive=crashing, progress=False)
    data = json.loads((tmp_path / RESULT_FILE).read_text())
    assert data["entry_status"] == "Crashed" and data["_checkpoint"]["progress"] == [3, 6]
    resumed = ScriptedDriver()
    report = evaluate({}, policy="expert", out=tmp_path, limit=6, drive=resumed, progress=False)
    assert resumed.driven == ["RouteScenario_4_rep0", "RouteScenario_5_rep0", "RouteScenario_6_rep0"]
    assert report["num_routes"] == 6 and report["driving_score"] == pytest.approx(68.0)
    # a finished evaluation re-run drives nothing
    idle = ScriptedDriver()
    evaluate({}, policy="expert", out=tmp_path, limit=6, drive=idle, progress=False)
    assert idle.driven == []


def test_agent_crashed_routes_are_driven_again(tmp_path):
    evaluate({}, policy="expert", out=tmp_path, limit=3, drive=ScriptedDriver(), progress=False)
    path = tmp_path / RESULT_FILE
    data = json.loads(path.read_text())
    data["_checkpoint"]["records"][1]["status"] = "Failed - Agent crashed"
    path.write_text(json.dumps(data))
    again = ScriptedDriver()
    evaluate({}, policy="expert", out=tmp_path, limit=3, drive=again, progress=False)
    assert again.driven == ["RouteScenario_2_rep0"]


def test_results_of_another_policy_are_not_mixed(tmp_path):
    evaluate({}, policy="expert", out=tmp_path, limit=2, drive=ScriptedDriver(), progress=False)
    with pytest.raises(UserError, match=r"another policy \(builtin:expert, now builtin:constant\)"):
        evaluate({}, policy="constant", out=tmp_path, limit=2, drive=ScriptedDriver(), progress=False)
    with pytest.raises(UserError, match="--ckpt CKPT_DIR"):
        evaluate({}, out=tmp_path / "x", limit=2, drive=ScriptedDriver(), progress=False)


def test_global_record_matches_leaderboard_rules():
    route = load_suite().routes[0]
    records = [scripted_record(route, 100.0), scripted_record(route, 50.0, collisions=1)]
    for r, status in zip(records, ("Completed", "Failed - Agent got blocked")):
        r["status"], r["index"] = status, 0
    g = global_record(records, total=4)                  # two routes missing count as 0
    assert g["scores_mean"]["score_composed"] == pytest.approx((100 + 30) / 4)
    assert g["scores_std_dev"]["score_route"] == pytest.approx(47.871, abs=1e-3)  # stdev of [100,50,0,0]
    km = (100 / 1000 * 1.0) + (100 / 1000 * 0.5)
    assert g["infractions"]["collisions_vehicle"] == pytest.approx(round(1 / km, 3))
    assert g["status"] == "Failed" and g["meta"]["exceptions"][0][2] == "Failed - Agent got blocked"


def test_eval_driver_sets_where_and_how_the_model_runs(tmp_path, monkeypatch):
    """``eval_driver.device`` / ``eval_driver.policy`` reach the policy and the driver; the rest stays driver
    settings (the GPU infer configs run the model bf16 with merged adapters on the GPU this way)."""
    import minddrive.rollout.driver as driver_module
    from minddrive.config import load_config
    from minddrive.eval import closed_loop
    from minddrive.rollout.policy import load_policy, save_policy

    cfg = load_config("adzoo/minddrive/configs/minddrive_tiny_infer.py",
                      {"eval_driver": dict(decision_interval=3, device="cpu", policy=dict(merge_adapters=True)),
                       "env.render": False})
    save_policy(load_policy(cfg, None), tmp_path / "ckpt", cfg, meta=dict(stage="test"))
    seen = {}

    class RecordingDriver:
        def __init__(self, envs, policy, **kwargs):
            seen.update(kwargs, policy=policy)

    monkeypatch.setattr(driver_module, "PolicyDriver", RecordingDriver)
    closed_loop.policy_driver(cfg, str(tmp_path / "ckpt"), None, workers=1)
    assert seen["device"] == "cpu" and seen["decision_interval"] == 3
    assert set(seen) == {"device", "decision_interval", "sample", "stop_on_penalty", "policy"}
    from minddrive.models.acceleration import fast_paths

    assert fast_paths(seen["policy"].model).merged is not None
