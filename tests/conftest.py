"""Fixtures shared by every test: where the repository and its test data live (tests/fixtures/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: small inputs that ship with the repository."""
    return FIXTURES


@pytest.fixture(scope="session")
def release_dir() -> Path:
    """Files of the upstream MindDrive release: its two Bench2Drive result files, rollout routes, split."""
    return FIXTURES / "minddrive_release"


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    """Leaderboard checkpoints written by the leaderboard's StatisticsManager for scripted routes."""
    return FIXTURES / "leaderboard_checkpoints"
