"""Fixtures shared by every test: where the repository, its test fixtures and ../shared live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: small hand-made inputs that ship with the repository."""
    return REPO_ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared reference folder (real result files, route XMLs); MINDDRIVE_SHARED overrides its place.

    Tests that need it are skipped where it is absent (it is not part of the repository).
    """
    path = Path(os.environ.get("MINDDRIVE_SHARED", REPO_ROOT.parent / "shared"))
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path} (set MINDDRIVE_SHARED)")
    return path


@pytest.fixture(scope="session")
def b2d_results_dir(shared_dir: Path) -> Path:
    """Real Bench2Drive closed-loop result files (see its SOURCES.md)."""
    path = shared_dir / "fixtures" / "bench2drive_results"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path
