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


# A quoted ``docs/...`` names a file of another project (Bench2Drive's anno.md), not ours.
DOC_REFERENCE = re.compile(r"(?<![`/\w])docs/([A-Za-z0-9_-]+\.md)(?:#([a-z0-9_-]+))?")


def text_files(repo_root: Path):
    """(relative path, text) of every text file of the tree that code, configs, tests or docs live in."""
    files = [repo_root / name for name in ("Makefile", "pyproject.toml", "README.md")]
    for top in SCANNED:
        files += [p for p in (repo_root / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in files:
        rel = path.relative_to(repo_root).as_posix()
        if rel.startswith(SKIPPED) or path.suffix in (".gz", ".jpg", ".png", ".npz", ".pt", ".pyc"):
            continue
        yield rel, path.read_text(errors="replace")


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_no_file_points_outside_the_repository(repo_root):
    offenders = [f"{rel}:{number}: {line.strip()}" for rel, text in text_files(repo_root)
                 for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []


def test_cited_documents_and_sections_exist(repo_root):
    anchors = {}
    for doc in (repo_root / "docs").glob("*.md"):
        anchors[doc.name] = {heading_anchor(line.lstrip("#")) for line in doc.read_text().splitlines()
                             if line.startswith("#")}
    cited, broken = 0, []
    for rel, text in text_files(repo_root):
        for match in DOC_REFERENCE.finditer(text):
            cited += 1
            name, anchor = match.groups()
            if name not in anchors or (anchor and anchor not in anchors[name]):
                broken.append(f"{rel}: {match.group(0)}")
    assert broken == [] and cited >= 30
    assert heading_anchor("Driving score and success rate") == "driving-score-and-success-rate"


def test_parity_config_reads_the_route_file_the_repository_ships(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # config paths are relative to the repository root, like data/ and ckpts/
    cfg = load_config(PARITY)
    jobs = make_jobs(dict(cfg.rl_routes))
    assert len(jobs) == 44 * 5 and jobs[0].key == "RouteScenario_1773_rep0_it0"  # upstream's 5 repetitions
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
