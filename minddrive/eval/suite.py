"""Versioned closed-loop benchmark suites for the embedded simulator.

A suite is a JSON file in ``minddrive/eval/suites/`` (or any path) listing fixed routes:
``{"id", "scenario_type", "seed"}`` each. The file carries a ``version`` and the SHA-256 of
its canonical content, so a result JSON can say exactly which suite it scored, and an edited
suite without a new version and hash is refused rather than silently compared with old numbers.

Seeds: evaluation suites use seeds in ``[0, EVAL_SEED_LIMIT)``; RL training draws seeds
``>= RL_SEED_START`` (minddrive.rl), so no evaluation route is ever trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minddrive.constants import ABILITIES, ABILITY_NAMES
from minddrive.errors import UserError
from minddrive.utils.io import atomic_path, read_json

SUITE_DIR = Path(__file__).resolve().parent / "suites"
DEFAULT_SUITE = "sim-b2d-mini"
EVAL_SEED_LIMIT = 100_000
RL_SEED_START = 1_000_000
SCENARIO_TYPES = tuple(sorted({t for types in ABILITIES.values() for t in types}))


@dataclass(frozen=True)
class SuiteRoute:
    """One fixed evaluation route: an embedded-simulator scenario type and its seed."""

    id: str
    scenario_type: str
    seed: int

    @property
    def route_id(self) -> str:
        """Leaderboard record id; ``route_id.split('_')[1] == id`` as Bench2Drive's tools expect."""
        return f"RouteScenario_{self.id}_rep0"

    @property
    def scenario_name(self) -> str:
        return f"{self.scenario_type}_1"

    def reset_options(self) -> dict:
        """What ``DriveEnv.reset(seed=self.seed, options=...)`` needs to build this route."""
        return {"scenario": self.scenario_type}

    def to_json(self) -> dict:
        return {"id": self.id, "scenario_type": self.scenario_type, "seed": self.seed}


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    routes: tuple[SuiteRoute, ...]
    sha256: str
    description: str = ""

    @property
    def route_ids(self) -> list[str]:
        return [r.route_id for r in self.routes]

    def ability_counts(self) -> dict[str, int]:
        """Routes per Bench2Drive ability (a type may count for two abilities, as in Bench2Drive)."""
        return {a: sum(r.scenario_type in ABILITIES[a] for r in self.routes) for a in ABILITY_NAMES}

    def head(self, count: int | None) -> "Suite":
        """The first ``count`` routes (all when None or 0): quick runs and tests use a prefix."""
        if not count:
            return self
        return Suite(self.name, self.version, self.routes[:count], self.sha256, self.description)

    def identity(self) -> dict:
        """What a result file stores to say which suite produced it."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "routes": len(self.routes)}


def suite_digest(name: str, version: str, routes: list[dict]) -> str:
    """SHA-256 of the canonical JSON of the suite's identity and routes (key order and spacing fixed)."""
    canonical = json.dumps({"name": name, "version": version, "routes": routes}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_suite_path(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    candidate = SUITE_DIR / f"{name_or_path}.json"
    if not candidate.is_file():
        known = ", ".join(available_suites()) or "none"
        raise UserError(f"--suite {name_or_path!r}: no such suite file; expected a path or one of: {known}")
    return candidate


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.json"))


def load_suite(name_or_path: str | os.PathLike = DEFAULT_SUITE) -> Suite:
    """Read and verify a suite: version present, hash matching, ids/seeds unique, seeds in the eval range."""
    path = resolve_suite_path(name_or_path)
    data = read_json(path)
    for key in ("name", "version", "sha256", "routes"):
        if key not in data:
            raise UserError(f"{path}: suite file is missing key '{key}'")
    raw_routes = data["routes"]
    routes = []
    for i, item in enumerate(raw_routes):
        try:
            route = SuiteRoute(id=str(item["id"]), scenario_type=str(item["scenario_type"]), seed=int(item["seed"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: routes[{i}] needs 'id', 'scenario_type' and an integer 'seed'") from None
        if route.scenario_type not in SCENARIO_TYPES:
            raise UserError(f"{path}: routes[{i}].scenario_type {route.scenario_type!r} is not a Bench2Drive type")
        if not 0 <= route.seed < EVAL_SEED_LIMIT:
            raise UserError(f"{path}: routes[{i}].seed {route.seed} outside the evaluation range "
                            f"[0, {EVAL_SEED_LIMIT}) (RL trains on seeds >= {RL_SEED_START})")
        routes.append(route)
    for field_name in ("id", "seed"):
        dup = [v for v, n in Counter(getattr(r, field_name) for r in routes).items() if n > 1]
        if dup:
            raise UserError(f"{path}: route {field_name} {dup[0]!r} appears more than once")
    digest = suite_digest(data["name"], str(data["version"]), raw_routes)
    if digest != data["sha256"]:
        raise UserError(f"{path}: content does not match its sha256 (edited without a new version?); "
                        f"bump 'version' and set 'sha256' to {digest}")
    return Suite(name=data["name"], version=str(data["version"]), routes=tuple(routes), sha256=digest,
                 description=data.get("description", ""))


def interleaved_types() -> list[str]:
    """All scenario types, ordered round-robin over the five abilities.

    A prefix of the suite (quick runs, ``--limit``) then touches every ability early.
    """
    order: list[str] = []
    queues = [list(ABILITIES[a]) for a in ABILITY_NAMES]
    while any(queues):
        for queue in queues:
            while queue and queue[0] in order:
                queue.pop(0)
            if queue:
                order.append(queue.pop(0))
    return order


def generate_routes(routes_per_type: int = 3, give_way_routes: int = 5, rng_seed: int = 20250108) -> list[dict]:
    """The route list of ``sim-b2d-mini`` v1: every Bench2Drive scenario type, seeds drawn once.

    Route k of repetition r of every type comes before repetition r + 1 of any type. Give_Way has
    only two types, so each gets more routes to keep that ability's estimate usable. Kept here so
    the shipped file can be regenerated and checked (tests compare the two).
    """
    give_way = set(ABILITIES["Give_Way"])
    types = interleaved_types()
    plan = [t for rep in range(max(routes_per_type, give_way_routes)) for t in types
            if rep < (give_way_routes if t in give_way else routes_per_type)]
    seeds = np.random.default_rng(rng_seed).choice(EVAL_SEED_LIMIT, size=len(plan), replace=False)
    return [{"id": str(k + 1), "scenario_type": t, "seed": int(seed)} for k, (t, seed) in enumerate(zip(plan, seeds))]


def write_suite(path: str | os.PathLike, name: str, version: str, routes: list[dict], description: str) -> None:
    body = {
        "name": name,
        "version": version,
        "description": description,
        "seed_policy": (f"evaluation seeds lie in [0, {EVAL_SEED_LIMIT}); RL training uses seeds >= {RL_SEED_START}, "
                        "so no evaluation route is trained on"),
        "sha256": suite_digest(name, version, routes),
        "routes": routes,
    }
    # One route per line keeps diffs of the shipped file readable.
    text = json.dumps(body, indent=1)
    for route in routes:
        text = text.replace(json.dumps(route, indent=1).replace("\n", "\n  "), json.dumps(route), 1)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


if __name__ == "__main__":  # regenerate the shipped suite: python -m minddrive.eval.suite
    write_suite(SUITE_DIR / f"{DEFAULT_SUITE}.json", DEFAULT_SUITE, "1.0", generate_routes(),
                "Embedded-simulator closed-loop suite: all 44 Bench2Drive scenario types (3 routes each, 5 for the "
                "two Give_Way types), fixed seeds; scored like Bench2Drive (DS, SR, multi-ability).")
