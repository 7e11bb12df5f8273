"""Fault injection: every refusal is one line on stderr with a non-zero exit, and leaves existing outputs as they were.

Covers the output-path rule (score, convert, eval, decouple, ppo, rl-loop), resume keyed on content (eval, collect), config
validation, non-finite actions, and damaged input files (checkpoints, routes, indexes, steps, episodes).
Training work dirs are in tests/train/test_work_dir_rules.py (they need the toy trainer).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from minddrive.cli import main
from minddrive.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY_TRAIN = REPO / "adzoo/minddrive/configs/minddrive_tiny_train_stage1.py"
TINY_ROLLOUT = REPO / "adzoo/minddrive/configs/minddrive_tiny_rollout.py"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself) with its bytes: 'unchanged' means equal snapshots."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc != 0, err
    # progress bars (tqdm, on stderr) may precede it; the error itself is one line and no traceback
    errors = [line for line in err.splitlines() if line.startswith("minddrive ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    err = errors[0]
    for needle in needles:
        assert needle in err, err
    return err


def result_file(tmp_path: Path) -> Path:
    """A small leaderboard result file (one completed route) that ``minddrive score`` reads."""
    from minddrive.constants import INFRACTION_KEYS

    record = {"index": 0, "route_id": "RouteScenario_1_rep0", "scenario_name": "Accident_1", "weather_id": "1",
              "save_name": "", "status": "Completed", "num_infractions": 0,
              "infractions": {k: [] for k in INFRACTION_KEYS},
              "scores": {"score_route": 100.0, "score_penalty": 1.0, "score_composed": 100.0},
              "meta": {"route_length": 100.0, "duration_game": 20.0, "duration_system": 1.0}, "town_name": "Town01"}
    path = tmp_path / "good.json"
    path.write_text(json.dumps({"_checkpoint": {"records": [record], "progress": [1, 1]}, "entry_status": "Finished"}))
    return path


def lora_checkpoint(path: Path, value: float = 1.0) -> Path:
    """A checkpoint directory with the three adapters' LoRA tensors (what ``convert`` reads)."""
    path.mkdir(parents=True)
    save_file({f"llm.{role}.lora_A": torch.full((2, 2), value) for role in
               ("action_expert", "decision_expert", "value_expert")}, str(path / "model.safetensors"))
    (path / "config.py").write_text("model = dict(type='MindDrive')\n")
    (path / "meta.json").write_text(json.dumps({"stage": 1, "step": 1}))
    return path


# ------------------------------------------------------------------------------- output paths
def test_score_refuses_to_replace_a_directory(tmp_path, capsys):
    good = result_file(tmp_path)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f").write_text("x")
    before = snapshot(tmp_path / "d")
    rc = main(["score", str(good), "--output", str(tmp_path / "d")])
    one_line_error(capsys, rc, "--overwrite")
    assert snapshot(tmp_path / "d") == before


def test_score_refuses_a_foreign_file_rewrites_its_own_and_moves_aside_with_overwrite(tmp_path, capsys):
    good = result_file(tmp_path)
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    rc = main(["score", str(good), "--output", str(notes)])
    one_line_error(capsys, rc, "not written by 'minddrive score'")
    assert notes.read_text() == '{"mine": true}'
    report = tmp_path / "report.json"
    assert main(["score", str(good), "--output", str(report)]) == 0
    assert main(["score", str(good), "--output", str(report)]) == 0    # its own file: replaced
    assert json.loads(report.read_text())["driving_score"] == pytest.approx(100.0)
    capsys.readouterr()
    assert main(["score", str(good), "--output", str(notes), "--overwrite"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("notes.json.old-")]
    assert len(aside) == 1 and aside[0].read_text() == '{"mine": true}'
    assert "moved the existing" in capsys.readouterr().err


def test_convert_refuses_an_existing_folder_and_replaces_only_its_own(tmp_path, capsys):
    src = lora_checkpoint(tmp_path / "il")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("results")
    before = snapshot(tmp_path / "e")
    rc = main(["convert", "--ckpt", str(src), "--out", str(tmp_path / "e")])
    one_line_error(capsys, rc, "not written by 'minddrive convert'")
    assert snapshot(tmp_path / "e") == before
    assert main(["convert", "--ckpt", str(src), "--out", str(tmp_path / "rl")]) == 0
    assert main(["convert", "--ckpt", str(src), "--out", str(tmp_path / "rl")]) == 0   # its own: replaced
    assert (tmp_path / "rl" / "model.safetensors").is_file()


# ------------------------------------------------------------------------- eval resume by content
class ScriptedDrive:
    """Stands in for the simulator run (no model is loaded): every route completes with 100 %."""

    def __init__(self):
        self.driven: list[str] = []

    def __call__(self, routes, on_record):
        from minddrive.constants import INFRACTION_KEYS

        for route in routes:
            self.driven.append(route.route_id)
            on_record(route, {"status": "Completed", "weather_id": "1", "infractions": {k: [] for k in INFRACTION_KEYS},
                              "scores": {"score_route": 100.0, "score_penalty": 1.0, "score_composed": 100.0},
                              "meta": {"route_length": 50.0, "duration_game": 10.0, "duration_system": 1.0}})


def test_eval_resume_is_keyed_on_checkpoint_content_not_path(tmp_path):
    from minddrive.eval.closed_loop import RESULT_FILE, evaluate

    ckpt = lora_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "eval"
    evaluate({}, ckpt=str(ckpt), out=out, limit=2, drive=ScriptedDrive(), progress=False)
    before = snapshot(out)
    save_file({"llm.action_expert.lora_A": torch.zeros(2, 2)}, str(ckpt / "model.safetensors"))  # new weights, same path
    with pytest.raises(UserError, match="another checkpoint_sha256") as info:
        evaluate({}, ckpt=str(ckpt), out=out, limit=2, drive=ScriptedDrive(), progress=False)
    assert "\n" not in str(info.value)
    assert snapshot(out) == before
    fresh = ScriptedDrive()
    evaluate({}, ckpt=str(ckpt), out=out, limit=2, drive=fresh, progress=False, overwrite=True)
    assert len(fresh.driven) == 2
    assert [p for p in tmp_path.iterdir() if p.name.startswith("eval.old-")][0].joinpath(RESULT_FILE).read_bytes() \
        == before[RESULT_FILE]
    # the same weights moved to another path resume (content, not path)
    moved = tmp_path / "moved"
    os.replace(ckpt, moved)
    idle = ScriptedDrive()
    evaluate({}, ckpt=str(moved), out=out, limit=2, drive=idle, progress=False)
    assert idle.driven == []


def test_eval_resume_refuses_another_config(tmp_path):
    from minddrive.eval.closed_loop import evaluate

    out = tmp_path / "eval"
    evaluate({"rollout": {"decision_interval": 5}}, policy="constant", out=out, limit=1, drive=ScriptedDrive(),
             progress=False)
    with pytest.raises(UserError, match="another config_sha256"):
        evaluate({"rollout": {"decision_interval": 2}}, policy="constant", out=out, limit=1, drive=ScriptedDrive(),
                 progress=False)


def test_smaller_limit_reports_a_subset_and_keeps_finished_routes(tmp_path):
    from minddrive.eval.closed_loop import RESULT_FILE, evaluate

    out = tmp_path / "eval"
    evaluate({}, policy="constant", out=out, limit=4, drive=ScriptedDrive(), progress=False)
    idle = ScriptedDrive()
    score = evaluate({}, policy="constant", out=out, limit=2, drive=idle, progress=False)
    data = json.loads((out / RESULT_FILE).read_text())
    assert idle.driven == [] and score["num_routes"] == 2
    assert len(data["_checkpoint"]["records"]) == 4 and data["_checkpoint"]["progress"] == [4, 4]
    assert data["entry_status"] == "Finished"
    more = ScriptedDrive()
    evaluate({}, policy="constant", out=out, limit=5, drive=more, progress=False)
    assert len(more.driven) == 1


def test_eval_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text("{}")
    before = snapshot(tmp_path / "out")
    rc = main(["eval", "--policy", "constant", "--limit", "1", "--out", str(tmp_path / "out")])
    one_line_error(capsys, rc, "not written by 'minddrive eval'")
    assert snapshot(tmp_path / "out") == before


# --------------------------------------------------------------------------- config validation
@pytest.mark.parametrize("option, needle", [
    ("train_cfg.max_iters=abc", "train_cfg.max_iters='abc': expected an integer"),
    ("train_cfg.no_such_key=3", "no key 'no_such_key' under train_cfg"),
    ("train_cfg.batch_size=0", "train_cfg.batch_size=0: expected an integer >= 1"),
    ("optimizer.lr=-1.0", "optimizer.lr=-1.0: expected a number > 0"),
    ("model.nonexistent.x=1", "no key 'nonexistent' under model"),
])
def test_bad_cfg_options_are_one_line_before_any_work(tmp_path, capsys, option, needle):
    rc = main(["train", str(TINY_TRAIN), "--work-dir", str(tmp_path / "w"), "--cfg-options", option])
    one_line_error(capsys, rc, str(TINY_TRAIN), needle)
    assert not (tmp_path / "w").exists()


def test_collect_and_eval_options_are_checked(tmp_path, capsys):
    rc = main(["collect", str(TINY_ROLLOUT), "--out", str(tmp_path / "r"), "--cfg-options", "rollout.envs_per_worker=abc"])
    one_line_error(capsys, rc, "rollout.envs_per_worker='abc': expected an integer")
    rc = main(["eval", str(TINY_ROLLOUT), "--ckpt", str(tmp_path), "--cfg-options", "rollout.decision_interval=0"])
    one_line_error(capsys, rc, "rollout.decision_interval=0: expected an integer >= 1")
    assert not (tmp_path / "r").exists()


def test_new_keys_are_allowed_when_marked():
    from minddrive.config import load_config

    cfg = load_config(TINY_TRAIN, ["+train_cfg.extra_note=3", "train_cfg.max_iters=7"])
    assert cfg.train_cfg.extra_note == 3 and cfg.train_cfg.max_iters == 7


# ------------------------------------------------------------------------ non-finite actions
class NanPolicy:
    """A policy whose outputs hold NaN (what non-finite trajectory-head weights produce)."""

    def preprocess(self, obs_list, memory=None):
        return obs_list

    def act(self, batch, sample=False, temperature=1.0, decision=None):
        from minddrive.eval.closed_loop import ConstantPolicy

        out = ConstantPolicy().act(batch)
        out.speed_waypoints[:] = float("nan")
        return out


def test_nan_policy_fails_each_route_with_a_named_reason_and_the_evaluation_goes_on(tmp_path):
    from minddrive.eval.closed_loop import RESULT_FILE, build_envs, evaluate
    from minddrive.rollout.driver import NON_FINITE_ACTION, PolicyDriver

    def drive(routes, on_record):
        driver = PolicyDriver(build_envs({}, 1), NanPolicy())
        try:
            driver.run([dict(seed=r.seed, options=r.reset_options(), route=r) for r in routes],
                       on_episode_end=lambda result: on_record(result.job["route"], result.record))
        finally:
            driver.close()

    score = evaluate({}, policy="constant", out=tmp_path, limit=2, drive=drive, progress=False)
    records = json.loads((tmp_path / RESULT_FILE).read_text())["_checkpoint"]["records"]
    assert [r["status"] for r in records] == ["Failed - Agent crashed"] * 2
    assert [r["meta"]["failure_reason"] for r in records] == [NON_FINITE_ACTION] * 2
    assert score["failure_reasons"] == {NON_FINITE_ACTION: 2}
    assert any("2 routes failed: non-finite action" in w for w in score["warnings"])


def test_collect_with_a_nan_policy_is_an_error(tmp_path, monkeypatch):
    rl_dir = str(REPO / "tests" / "rl")
    monkeypatch.syspath_prepend(rl_dir)
    monkeypatch.setenv("PYTHONPATH", f"{rl_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    from minddrive.config import load_config
    from minddrive.rl.collector import collect

    from rl_fakes import CorridorPolicy

    policy = CorridorPolicy(hidden=8)
    with torch.no_grad():
        for p in policy.parameters():
            p.fill_(float("nan"))
    policy.save_checkpoint(str(tmp_path / "nan"))
    (tmp_path / "cfg.py").write_text(
        "custom_imports = dict(imports=['rl_fakes'], allow_failed_imports=False)\n"
        "model = dict(type='CorridorPolicy', hidden=8)\nenv = dict(type='CorridorEnv')\n"
        "reward = dict(type='SparseRouteReward')\n"
        "rollout = dict(num_workers=0, envs_per_worker=1, decision_interval=5, controller='rl_fakes.SpeedController')\n"
        "rl_routes = dict(type='seeds', count=2, seed_start=1000000, scenarios=['SignalizedJunctionLeftTurn'])\n")
    cfg = load_config(tmp_path / "cfg.py")
    with pytest.raises(UserError, match="2 of 2 episodes produced no decision step"):
        collect(cfg, str(tmp_path / "nan"), tmp_path / "out", num_workers=0, show_progress=False)


def test_collect_with_a_mistyped_ckpt_leaves_nothing_behind(tmp_path, capsys):
    rc = main(["collect", str(TINY_ROLLOUT), "--ckpt", str(tmp_path / "typo"), "--out", str(tmp_path / "r")])
    one_line_error(capsys, rc, "typo: checkpoint directory not found")
    assert not (tmp_path / "r").exists()   # the corrected rerun starts clean


def test_collect_restarts_a_start_that_produced_no_episode(tmp_path, monkeypatch):
    """A folder whose run.json names another checkpoint but holds no episode is restarted, not refused."""
    from minddrive.config import load_config
    from minddrive.rl.collector import RUN_FILE, collect
    from minddrive.utils.io import claim_dir

    rl_dir = str(REPO / "tests" / "rl")
    monkeypatch.syspath_prepend(rl_dir)
    (tmp_path / "cfg.py").write_text(
        "custom_imports = dict(imports=['rl_fakes'], allow_failed_imports=False)\n"
        "model = dict(type='CorridorPolicy', hidden=8)\nenv = dict(type='CorridorEnv')\n"
        "reward = dict(type='SparseRouteReward')\n"
        "rollout = dict(num_workers=0, envs_per_worker=1, decision_interval=5, controller='rl_fakes.SpeedController')\n"
        "rl_routes = dict(type='seeds', count=1, seed_start=1000000, scenarios=['SignalizedJunctionLeftTurn'])\n")
    out = tmp_path / "out"
    claim_dir(out, "collect")
    (out / RUN_FILE).write_text(json.dumps({"config_fingerprint": "x", "ckpt_fingerprint": "y", "ckpt": "bad"}))
    summary = collect(load_config(tmp_path / "cfg.py"), None, out, num_workers=0, show_progress=False)
    assert summary["episodes"] == 1


# ------------------------------------------------------------------------------ damaged inputs
def test_truncated_checkpoint_weights_are_one_line(tmp_path, capsys):
    src = lora_checkpoint(tmp_path / "il")
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    rc = main(["convert", "--ckpt", str(src), "--out", str(tmp_path / "rl")])
    one_line_error(capsys, rc, "model.safetensors: unreadable weights file")
    assert not (tmp_path / "rl").exists()


def test_malformed_route_file_is_one_line(tmp_path):
    from minddrive.sim.routes import parse_routes

    bad = tmp_path / "routes.xml"
    bad.write_text("<routes><route id='1'")
    with pytest.raises(UserError, match="malformed route XML") as info:
        parse_routes(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", pickle.dumps([1, 2, 3])])
def test_damaged_dataset_index_is_one_line(tmp_path, capsys, content):
    index = tmp_path / "dataset_index.pkl"
    index.write_bytes(content)
    rc = main(["ppo", str(TINY_ROLLOUT), "--ckpt", str(tmp_path), "--index", str(index),
               "--work-dir", str(tmp_path / "ppo")])
    one_line_error(capsys, rc, "dataset_index.pkl")
    assert index.read_bytes() == content


def test_damaged_info_index_is_one_line(tmp_path):
    from minddrive.data.infos import load_info_index

    for content in (b"", b"\x80\x04garbage", b"not a pickle at all"):
        (tmp_path / "infos.pkl").write_bytes(content)
        with pytest.raises(UserError, match="infos.pkl") as info:
            load_info_index(tmp_path / "infos.pkl")
        assert "\n" not in str(info.value)


def test_damaged_step_and_episode_files_are_one_line(tmp_path, capsys):
    from minddrive.rl.collector import RUN_FILE
    from minddrive.rl.decouple import read_step

    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "000000.pt").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(UserError, match="unreadable step file") as info:
        read_step(tmp_path / "dataset_index.pkl", {"file": "steps/000000.pt"})
    assert "\n" not in str(info.value)

    rollouts = tmp_path / "rollouts"
    (rollouts / "episodes").mkdir(parents=True)
    (rollouts / RUN_FILE).write_text(json.dumps({"config_fingerprint": "a", "ckpt_fingerprint": "b"}))
    (rollouts / "episodes" / "seed1.pt").write_bytes(np.arange(10).tobytes())
    before = snapshot(rollouts)
    rc = main(["decouple", str(rollouts), "--out", str(tmp_path / "dec")])
    one_line_error(capsys, rc, "seed1.pt: unreadable episode buffer")
    assert snapshot(rollouts) == before


# ----------------------------------------------------------- RL folders: decouple, ppo, rl-loop
CORRIDOR = """
custom_imports = dict(imports=['rl_fakes'], allow_failed_imports=False)
model = dict(type='CorridorPolicy', hidden=8)
env = dict(type='CorridorEnv')
reward = dict(type='SparseRouteReward')
rollout = dict(num_workers=0, envs_per_worker=2, decision_interval=5, controller='rl_fakes.SpeedController')
rl_routes = dict(type='seeds', count=2, seed_start=1000000, scenarios=['SignalizedJunctionLeftTurn'])
ppo = dict(epochs=1, batch_size=8, learning_rate=0.01)
"""


@pytest.fixture
def corridor_run(tmp_path, monkeypatch):
    """Two corridor checkpoints (``il``, ``other``), a collection with ``il`` and its decoupled steps (``dec``)."""
    rl_dir = str(REPO / "tests" / "rl")
    monkeypatch.syspath_prepend(rl_dir)
    monkeypatch.setenv("PYTHONPATH", f"{rl_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    from minddrive.config import load_config
    from minddrive.rl.collector import collect
    from minddrive.rl.decouple import decouple

    from rl_fakes import CorridorPolicy

    torch.manual_seed(0)
    CorridorPolicy(hidden=8).save_checkpoint(str(tmp_path / "il"))
    CorridorPolicy(hidden=8).save_checkpoint(str(tmp_path / "other"))
    (tmp_path / "cfg.py").write_text(CORRIDOR)
    cfg = load_config(tmp_path / "cfg.py")
    collect(cfg, str(tmp_path / "il"), tmp_path / "roll", num_workers=0, show_progress=False)
    decouple([tmp_path / "roll"], tmp_path / "dec", show_progress=False)
    return tmp_path


def foreign_folder(path: Path) -> dict[str, bytes]:
    (path / "notes").mkdir(parents=True)
    (path / "notes" / "results.txt").write_text("someone's results")
    return snapshot(path)


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.old-*"))


def test_decouple_refuses_a_folder_it_did_not_write_and_resumes_its_own(corridor_run, capsys):
    root = corridor_run
    out = root / "steps_out"
    before = foreign_folder(out)
    rc = main(["decouple", str(root / "roll"), "--out", str(out)])
    one_line_error(capsys, rc, str(out), "not written by 'minddrive decouple'", "--overwrite")
    assert snapshot(out) == before

    assert main(["decouple", str(root / "roll"), "--out", str(out), "--overwrite"]) == 0
    [aside] = moved_aside(out)
    assert snapshot(aside) == before and (out / "dataset_index.pkl").is_file()
    first = snapshot(out)
    assert main(["decouple", str(root / "roll"), "--out", str(out)]) == 0     # its own run: rewritten as it was
    assert snapshot(out).keys() == first.keys()


def test_decouple_refuses_rollouts_of_another_checkpoint_into_its_folder(corridor_run, capsys):
    from minddrive.config import load_config
    from minddrive.rl.collector import collect

    root = corridor_run
    collect(load_config(root / "cfg.py"), str(root / "other"), root / "roll_other", num_workers=0,
            show_progress=False)
    before = snapshot(root / "dec")
    rc = main(["decouple", str(root / "roll_other"), "--out", str(root / "dec")])
    one_line_error(capsys, rc, "another ckpt_fingerprint", "--overwrite")
    assert snapshot(root / "dec") == before


def test_ppo_refuses_a_folder_it_did_not_write_and_another_run(corridor_run, capsys):
    root = corridor_run
    work = root / "ppo"
    command = ["ppo", str(root / "cfg.py"), "--index", str(root / "dec" / "dataset_index.pkl"), "--work-dir", str(work)]
    before = foreign_folder(work)
    rc = main(command + ["--ckpt", str(root / "il")])
    one_line_error(capsys, rc, "not written by 'minddrive ppo'", "--overwrite")
    assert snapshot(work) == before

    assert main(command + ["--ckpt", str(root / "il"), "--overwrite"]) == 0
    [aside] = moved_aside(work)
    assert snapshot(aside) == before and (work / "ckpt" / "model.safetensors").is_file()
    assert main(command + ["--ckpt", str(root / "il")]) == 0                    # the same run again: accepted
    capsys.readouterr()
    done = snapshot(work)
    rc = main(command + ["--ckpt", str(root / "other")])                        # other weights: refused
    one_line_error(capsys, rc, "another checkpoint_sha256", "--overwrite")
    assert snapshot(work) == done


def test_rl_loop_refuses_a_folder_it_did_not_write(corridor_run, capsys):
    root = corridor_run
    work = root / "rl"
    before = foreign_folder(work)
    rc = main(["rl-loop", str(root / "cfg.py"), "--ckpt", str(root / "il"), "--work-dir", str(work),
               "--iterations", "1"])
    one_line_error(capsys, rc, "not written by 'minddrive rl-loop'", "--overwrite")
    assert snapshot(work) == before


@pytest.mark.parametrize("verb", ["decouple", "ppo", "rl-loop"])
def test_a_live_lock_stops_a_second_run(corridor_run, capsys, verb):
    """A folder held by a running process (here this one) is refused in one line and left as it was."""
    import socket

    from minddrive.config import load_config
    from minddrive.rl.buffer import checkpoint_fingerprint
    from minddrive.rl.collector import load_run_meta
    from minddrive.utils.io import LOCK_FILE, claim_dir, config_sha256, hash_files

    root = corridor_run
    work = root / "held"
    cfg, il, index = load_config(root / "cfg.py"), root / "il", root / "dec" / "dataset_index.pkl"
    run = load_run_meta(root / "roll")
    identity = {"decouple": {k: run[k] for k in ("config_fingerprint", "ckpt_fingerprint")},
                "ppo": dict(config_sha256=config_sha256(cfg), checkpoint_sha256=checkpoint_fingerprint(il),
                            index_sha256=hash_files([index])),
                "rl-loop": dict(config_sha256=config_sha256(cfg), checkpoint_sha256=checkpoint_fingerprint(il))}
    claim_dir(work, verb, identity[verb])
    (work / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    before = snapshot(work)
    command = {"decouple": ["decouple", str(root / "roll"), "--out", str(work)],
               "ppo": ["ppo", str(root / "cfg.py"), "--ckpt", str(il), "--index", str(index), "--work-dir", str(work)],
               "rl-loop": ["rl-loop", str(root / "cfg.py"), "--ckpt", str(il), "--work-dir", str(work),
                           "--iterations", "1"]}[verb]
    rc = main(command)
    one_line_error(capsys, rc, f"(pid {os.getpid()} on", "is writing here")
    assert snapshot(work) == before
