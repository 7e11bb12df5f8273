"""The repository stands alone: no path outside it, and the files the tests and configs read ship with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.collector import make_jobs

PARITY = "adzoo/minddrive/configs/minddrive_rl_ppo_train_parity44.py"
# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join(["/" + "work/", r"\.\./" + "shared", "/" + "home/"]))
SCANNED = ("minddrive", "adzoo", "tests", "tools", "team_code", "rl_projects", "docs", "benchmarks")
SKIPPED = ("benchmarks/gpu_runs",)  # logs of past GPU runs, quoted as they were printed


def test_no_file_points_outside_the_repository(repo_root):
    offenders = []
    files = [repo_root / name for name in ("Makefile", "pyproject.toml", "README.md")]
    for top in SCANNED:
        files += [p for p in (repo_root / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in files:
        rel = path.relative_to(repo_root).as_posix()
        if rel.startswith(SKIPPED) or path.suffix in (".gz", ".jpg", ".png", ".npz", ".pt", ".pyc"):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_parity_config_reads_the_route_file_the_repository_ships(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # config paths are relative to the repository root, like data/ and ckpts/
    cfg = load_config(PARITY)
    jobs = make_jobs(dict(cfg.rl_routes))
    assert len(jobs) == 44 and jobs[0].key == "RouteScenario_1773_rep0_it0"
    assert jobs[0].options == {"route_file": cfg.rl_routes.path, "route_id": "1773"}
    missing = load_config(PARITY, ["rl_routes.path=elsewhere/rollout_routes.xml"])
    with pytest.raises(UserError) as info:
        make_jobs(dict(missing.rl_routes))
    assert str(info.value) == "elsewhere/rollout_routes.xml: route file not found"


def test_every_fixture_file_has_a_source(repo_root):
    fixtures = repo_root / "tests" / "fixtures"
    sources = (fixtures / "SOURCES.md").read_text()
    for folder in sorted(p for p in fixtures.iterdir() if p.is_dir()):
        assert f"`{folder.name}/" in sources, folder.name
    for path in sorted((fixtures / "minddrive_release").iterdir()) + sorted(
            (fixtures / "leaderboard_checkpoints").iterdir()):
        assert f"`{path.name}`" in sources, path.name
