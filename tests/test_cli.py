"""The ``minddrive`` entry point: dispatch, exit codes, one-line user errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from minddrive.cli import VERBS, build_parser


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minddrive.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_score_missing_file(tmp_path):
    result = run_cli("score", "missing.json", cwd=tmp_path)
    assert_one_line_error(result, "minddrive score: error:", "missing.json", "not found")
    assert result.stdout == ""


def test_score_truncated_json(tmp_path):
    (tmp_path / "cut.json").write_text('{"_checkpoint": {"records": [{"route_id": "RouteScen')
    assert_one_line_error(run_cli("score", "cut.json", cwd=tmp_path), "cut.json", "malformed JSON")


def test_score_rejects_both_route_options(tmp_path):
    result = run_cli("score", "r.json", "--routes", "r.xml", "--expected", "220", cwd=tmp_path)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    assert "Traceback" not in result.stderr


def test_score_json_without_importing_torch(tmp_path):
    record = {"route_id": "RouteScenario_1_rep0", "scenario_name": "Accident_1", "status": "Completed",
              "infractions": {}, "scores": {"score_route": 100, "score_penalty": 1.0, "score_composed": 100},
              "meta": {"route_length": 500.0}}
    from minddrive.constants import INFRACTION_KEYS
    record["infractions"] = {key: [] for key in INFRACTION_KEYS}
    (tmp_path / "one.json").write_text(json.dumps({"_checkpoint": {"records": [record]}}))
    code = ("import sys; from minddrive.cli import main; rc = main(['score', 'one.json', '--json']); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    report_text, torch_line = result.stdout.rsplit("TORCH", 1)
    assert json.loads(report_text)["driving_score"] == 100.0
    assert torch_line.strip() == "False"


def test_unknown_verb_and_help():
    unknown = run_cli("no-such-verb")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr and "Traceback" not in unknown.stderr
    top = run_cli("--help")
    assert top.returncode == 0 and "score" in top.stdout and "ppo" in top.stdout


def test_every_verb_has_a_parser_entry():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == set(VERBS)
    assert VERBS["score"][0] == "minddrive.eval.scoring_cli"


@pytest.mark.parametrize("verb", ["score"])
def test_verb_help_exits_zero(verb):
    result = run_cli(verb, "--help")
    assert result.returncode == 0 and "--expected" in result.stdout and "--routes" in result.stdout
