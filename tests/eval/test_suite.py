"""The shipped embedded suite: versioned, hash-checked, >= 100 routes over the five abilities, eval seeds only."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from minddrive.constants import ABILITIES, ABILITY_NAMES
from minddrive.errors import UserError
from minddrive.eval.suite import (EVAL_SEED_LIMIT, RL_SEED_START, SCENARIO_TYPES, SUITE_DIR, generate_routes,
                                  interleaved_types, load_suite, suite_digest)


def test_shipped_suite_is_large_fixed_and_spread():
    suite = load_suite("sim-b2d-mini")
    assert suite.version == "1.0" and len(suite.sha256) == 64
    assert len(suite.routes) == 136
    assert suite.ability_counts() == {"Overtaking": 27, "Merging": 48, "Emergency_Brake": 36, "Give_Way": 10,
                                      "Traffic_Signs": 57}
    assert set(Counter(r.scenario_type for r in suite.routes)) == set(SCENARIO_TYPES) and len(SCENARIO_TYPES) == 44
    seeds = [r.seed for r in suite.routes]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < EVAL_SEED_LIMIT < RL_SEED_START for s in seeds)
    assert suite.routes[0].route_id == "RouteScenario_1_rep0" and suite.routes[0].route_id.split("_")[1] == "1"


def test_shipped_file_equals_its_generator():
    data = json.loads((SUITE_DIR / "sim-b2d-mini.json").read_text())
    assert data["routes"] == generate_routes()
    assert data["sha256"] == suite_digest(data["name"], data["version"], data["routes"])


def test_prefix_touches_every_ability():
    head = load_suite().head(10)
    assert len(head.routes) == 10
    assert all(count > 0 for count in head.ability_counts().values())
    order = interleaved_types()
    assert sorted(order) == sorted(SCENARIO_TYPES)
    assert [order[i] in ABILITIES[ABILITY_NAMES[i]] for i in range(5)] == [True] * 5


def _write(tmp_path, data):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(data))
    return path


def test_edited_suite_is_refused(tmp_path):
    data = json.loads((SUITE_DIR / "sim-b2d-mini.json").read_text())
    data["routes"][0]["seed"] += 1
    with pytest.raises(UserError, match="does not match its sha256"):
        load_suite(_write(tmp_path, data))


def test_training_range_seed_is_refused(tmp_path):
    routes = [{"id": "1", "scenario_type": "Accident", "seed": RL_SEED_START}]
    data = {"name": "x", "version": "1", "routes": routes, "sha256": suite_digest("x", "1", routes)}
    with pytest.raises(UserError, match=r"routes\[0\]\.seed 1000000 outside the evaluation range"):
        load_suite(_write(tmp_path, data))


def test_duplicate_ids_and_unknown_names(tmp_path):
    routes = [{"id": "1", "scenario_type": "Accident", "seed": 1}, {"id": "1", "scenario_type": "Accident", "seed": 2}]
    data = {"name": "x", "version": "1", "routes": routes, "sha256": suite_digest("x", "1", routes)}
    with pytest.raises(UserError, match="route id '1' appears more than once"):
        load_suite(_write(tmp_path, data))
    with pytest.raises(UserError, match="no such suite file"):
        load_suite("sim-b2d-nope")
