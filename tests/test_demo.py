"""`minddrive demo --quick`: the whole pipeline end to end, CI-sized, then resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCORE_KEYS = {"driving_score", "success_rate", "driving_score_evaluated", "success_rate_evaluated", "num_routes",
              "num_routes_expected", "missing_routes", "efficiency", "abilities"}


def _demo(work_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "minddrive.cli", "demo", "--quick", "--work-dir", str(work_dir)],
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_resumes(tmp_path):
    work = tmp_path / "demo"
    first = _demo(work)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((work / "report.json").read_text())
    for name in ("il", "rl"):
        assert SCORE_KEYS <= set(report[name]), name
        assert report[name]["num_routes"] == report["settings"]["eval_routes"]
        assert 0.0 <= report[name]["driving_score"] <= 100.0
    assert report["driving_score_gain"] == pytest.approx(report["rl"]["driving_score"] - report["il"]["driving_score"],
                                                         abs=0.01)
    assert len(report["rl_iterations"]) == report["settings"]["rl_iterations"] + 1
    pictures = set(report["pictures"])
    assert {"route_il.gif", "route_rl.gif", "rl_progress.png", "il_stage2_loss.png"} <= pictures
    for name in pictures:
        assert (work / "report" / name).stat().st_size > 1000, name
    assert "IL + RL" in first.stdout and (work / "report" / "report.md").is_file()
    # The data step wrote each route's HD map next to the clips; every frame's road boundaries come from them.
    from minddrive.data.infos import load_info_index

    maps = {path.name for path in (work / "data" / "maps").glob("*_HD_map.npz")}
    infos = load_info_index(work / "data" / "infos" / "b2d_infos_train.pkl")[0]
    assert {f"{info['town']}_HD_map.npz" for info in infos} <= maps
    assert all(info["map_mask"].sum() >= 20 for info in infos)

    # A second run finds every step done and only prints the table again.
    second = _demo(work)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("done earlier, skipping") == 7
