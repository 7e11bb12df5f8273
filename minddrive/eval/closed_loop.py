"""Closed-loop evaluation on a versioned embedded-simulator suite, resumable, leaderboard-format output.

``evaluate(cfg, ckpt, suite, workers, out)``:

1. load the suite (version + hash checked) and ``OUT/results.json`` if a previous run left one;
   routes already scored are kept, routes whose status says the run broke (``Failed``,
   ``Failed - Simulation crashed``, ``Failed - Agent crashed``, as the leaderboard's resume
   rule) are driven again;
2. drive the pending routes with the RL engineer's batched :class:`minddrive.rollout.driver.PolicyDriver`
   (``workers`` simulators in parallel), rewriting the checkpoint JSON atomically after every
   finished route, so a crash loses at most the routes in flight;
3. write ``global_record`` and ``entry_status: Finished`` like the leaderboard, then score the
   records with :func:`minddrive.eval.scoring.score_records` over the whole suite (missing routes
   count 0) and write ``OUT/score.json``.

The checkpoint JSON is the leaderboard's (docs/bench2drive.md#result-files), plus a ``minddrive`` key naming
the suite (name, version, sha256) and the policy, so results from different suites or policies
are never mixed on resume.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from minddrive.constants import INFRACTION_KEYS, NUM_PATH_POINTS
from minddrive.errors import UserError
from minddrive.eval.scoring import infraction_rates
from minddrive.eval.suite import DEFAULT_SUITE, Suite, SuiteRoute, load_suite
from minddrive.sim.records import RIG_SENSOR_ICONS
from minddrive.utils.io import claim_dir, read_json, write_json

RESULT_FILE = "results.json"
SCORE_FILE = "score.json"
#: statuses the leaderboard re-runs on resume (route_indexer.validate_and_resume)
RERUN_STATUSES = ("Failed", "Failed - Simulation crashed", "Failed - Agent crashed")
BUILTIN_POLICIES = ("expert", "constant")
#: RouteRecord key order (``vars(RouteRecord)`` in the leaderboard)
RECORD_KEYS = ("index", "route_id", "scenario_name", "weather_id", "save_name", "status", "num_infractions",
               "infractions", "scores", "meta", "town_name")
GLOBAL_LABELS = ("Avg. driving score", "Avg. route completion", "Avg. infraction penalty",
                 "Collisions with pedestrians", "Collisions with vehicles", "Collisions with layout",
                 "Red lights infractions", "Stop sign infractions", "Off-road infractions", "Route deviations",
                 "Route timeouts", "Agent blocked", "Yield emergency vehicles infractions", "Scenario timeouts",
                 "Min speed infractions")
GLOBAL_VALUE_KEYS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light",
                     "stop_infraction", "outside_route_lanes", "route_dev", "route_timeout", "vehicle_blocked",
                     "yield_emergency_vehicle_infractions", "scenario_timeouts", "min_speed_infractions")

#: ``drive(routes, on_record)``: drive every route, calling ``on_record(route, record)`` as each ends
DriveFn = Callable[[list[SuiteRoute], Callable[[SuiteRoute, dict], None]], None]


# ----------------------------------------------------------------------------------- result file
class ResultFile:
    """The leaderboard checkpoint JSON of one evaluation, kept in suite order and written atomically.

    It holds every finished route of ``suite`` ever driven into it; ``wanted`` (a prefix, from
    ``--limit``) is what this call drives and scores, so a smaller limit reports a subset and keeps
    the other routes' records.
    """

    def __init__(self, path: Path, suite: Suite, policy_id: str, identity: dict | None = None,
                 wanted: Suite | None = None):
        self.path = path
        self.suite = suite
        self.wanted = wanted or suite
        self.policy_id = policy_id
        self.identity = identity or {}
        self.records: dict[str, dict] = {}   # route_id -> record
        self.entry_status = "Started"
        self.prefix = len(self.wanted.routes)  # the longest prefix asked for so far: the file's total

    @classmethod
    def open(cls, path: Path, suite: Suite, policy_id: str, identity: dict | None = None,
             wanted: Suite | None = None) -> "ResultFile":
        """Start a new file, or resume one written by the same suite, policy and identity."""
        result = cls(path, suite, policy_id, identity, wanted)
        if not path.is_file():
            return result
        data = read_json(path)
        meta = data.get("minddrive", {}) if isinstance(data, dict) else {}
        if not isinstance(meta, dict) or not isinstance(data.get("_checkpoint", {}).get("records", []), list):
            raise UserError(f"{path}: not a results file of 'minddrive eval' (no minddrive/_checkpoint keys); "
                            "use another --out")
        if meta.get("suite", {}).get("sha256") != suite.sha256:
            raise UserError(f"{path}: holds results of suite {meta.get('suite')}, not {suite.identity()}; "
                            "use another --out")
        if "identity" not in meta and meta.get("policy") != policy_id:  # files from before content identities
            raise UserError(f"{path}: holds results of policy {meta.get('policy')!r}, not {policy_id!r}; "
                            "use another --out")
        for key, value in result.identity.items():
            if meta.get("identity", {}).get(key, value) != value:
                raise UserError(f"{path}: holds results of another {key} ({meta['identity'][key]}, now {value}); "
                                "use another --out, or --overwrite to move the old folder aside")
        known = set(suite.route_ids)
        for record in data.get("_checkpoint", {}).get("records", []):
            if not isinstance(record, dict) or "scores" not in record:
                raise UserError(f"{path}: a record without scores ({str(record)[:60]}); the file is damaged")
            if record.get("route_id") in known and record.get("status") not in RERUN_STATUSES:
                result.records[record["route_id"]] = record
        result.prefix = max(result.prefix, int(meta.get("prefix") or 0))
        return result

    def pending(self) -> list[SuiteRoute]:
        return [r for r in self.wanted.routes if r.route_id not in self.records]

    def add(self, route: SuiteRoute, record: dict) -> None:
        self.records[route.route_id] = record
        self.write()

    def ordered_records(self, suite: Suite | None = None) -> list[dict]:
        return [self.records[r] for r in (suite or self.suite).route_ids if r in self.records]

    def write(self) -> None:
        records = self.ordered_records()
        total = min(self.prefix, len(self.suite.routes))
        finished = self.entry_status == "Finished"
        write_json(self.path, {
            "_checkpoint": {
                "global_record": global_record(records, total) if finished else {},
                "progress": [len(records), total],
                "records": records,
            },
            "entry_status": self.entry_status,
            "eligible": finished,
            "sensors": list(RIG_SENSOR_ICONS),
            "values": global_values(records, total) if finished else [],
            "labels": list(GLOBAL_LABELS) if finished else [],
            "minddrive": {"suite": self.suite.head(total).identity(), "policy": self.policy_id,
                          "identity": self.identity, "prefix": total},
        })

    def finish(self) -> None:
        total = min(self.prefix, len(self.suite.routes))
        done = all(r in self.records for r in self.suite.route_ids[:total])
        self.entry_status = "Finished" if done else "Crashed"
        self.write()


def normalise_record(record: Mapping[str, Any], route: SuiteRoute, index: int) -> dict:
    """Stamp the suite's identity on a simulator record, in the leaderboard's key order.

    The simulator names routes by its own seed; the suite fixes ``route_id`` (so Bench2Drive's
    ``route_id.split('_')[1]`` gives the suite id) and ``scenario_name`` (``<type>_1``, so the
    scorer's ability table groups by the suite's scenario type).
    """
    out = dict(record)
    out.update(index=index, route_id=route.route_id, scenario_name=route.scenario_name)
    town = out.get("town_name", "SimTown")
    out["save_name"] = f"{route.route_id}_{town}_{route.scenario_name}_{out.get('weather_id')}_seed{route.seed}"
    infractions = dict(out.get("infractions") or {})
    out["infractions"] = {key: list(infractions.get(key, [])) for key in INFRACTION_KEYS}
    out["num_infractions"] = sum(len(v) for v in out["infractions"].values())
    out.setdefault("town_name", town)
    return {key: out.get(key) for key in RECORD_KEYS} | {k: v for k, v in out.items() if k not in RECORD_KEYS}


# -------------------------------------------------------------------------------- global record
def _mean_std(values: list[float], total: int) -> tuple[float, float]:
    mean = sum(values) / total
    if total <= 1:
        return round(mean, 6), 0.0
    padded = values + [0.0] * (total - len(values))
    return round(mean, 6), round(math.sqrt(sum((v - mean) ** 2 for v in padded) / (total - 1)), 3)


def global_record(records: list[dict], total: int) -> dict:
    """The leaderboard's ``global_record`` (docs/bench2drive.md#per-process-global-record) over ``total`` routes."""
    if not records:
        return {}
    means, stds = {}, {}
    for key in ("score_composed", "score_route", "score_penalty"):
        means[key], stds[key] = _mean_std([float(r["scores"][key]) for r in records], total)
    _, infractions, _ = infraction_rates(records)  # per km, as checked against real leaderboard files
    statuses = [r["status"] for r in records]
    status = "Failed" if any("Failed" in s for s in statuses) else (
        "Completed" if any(s == "Completed" for s in statuses) else "Perfect")
    return {
        "index": -1, "route_id": -1, "status": status, "infractions": infractions,
        "scores_mean": means, "scores_std_dev": stds,
        "meta": {"total_length": round(sum(r["meta"]["route_length"] for r in records), 3),
                 "duration_game": round(sum(r["meta"]["duration_game"] for r in records), 3),
                 "duration_system": round(sum(r["meta"]["duration_system"] for r in records), 3),
                 "exceptions": [[r["route_id"], r["index"], r["status"]] for r in records if "Failed" in r["status"]]},
    }


def global_values(records: list[dict], total: int) -> list[str]:
    """The leaderboard's 15 ``values`` strings, in ``GLOBAL_LABELS`` order."""
    g = global_record(records, total)
    if not g:
        return []
    means = g["scores_mean"]
    return [str(means["score_composed"]), str(means["score_route"]), str(means["score_penalty"])] + [
        str(g["infractions"][k]) for k in GLOBAL_VALUE_KEYS]


# ------------------------------------------------------------------------------------ driving
def policy_identity(ckpt: str | None, policy: str | None) -> str:
    if policy:
        if policy not in BUILTIN_POLICIES:
            raise UserError(f"--policy {policy!r}: expected one of {', '.join(BUILTIN_POLICIES)}")
        return f"builtin:{policy}"
    if not ckpt:
        raise UserError("eval: give --ckpt CKPT_DIR (a trained checkpoint) or --policy expert|constant")
    if not os.path.isdir(ckpt):
        raise UserError(f"--ckpt {ckpt}: checkpoint directory not found")
    return f"ckpt:{os.path.abspath(ckpt)}"


class ConstantPolicy:
    """Baseline: always "maintain moderate speed" along a straight path at a fixed speed (no model)."""

    def __init__(self, speed: float = 4.0):
        self.speed = float(speed)

    def preprocess(self, obs_list: list[dict], memory: dict | None = None) -> list[dict]:
        return obs_list

    def act(self, batch: list[dict], sample: bool = False, temperature: float = 1.0, decision=None):
        import torch

        from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_SPEED_ACTIONS, PATH_POINT_SPACING, WAYPOINT_DT
        from minddrive.interfaces import ActOutput

        n = len(batch)
        times = WAYPOINT_DT * torch.arange(1, NUM_FUTURE_WAYPOINTS + 1)
        waypoints = torch.stack([times * self.speed, torch.zeros_like(times)], dim=-1).expand(n, -1, -1)
        ahead = PATH_POINT_SPACING * torch.arange(1, NUM_PATH_POINTS + 1, dtype=torch.float32)
        path = torch.stack([ahead, torch.zeros_like(ahead)], dim=-1).expand(n, -1, -1)
        log_probs = torch.full((n, NUM_SPEED_ACTIONS), -1e9)
        log_probs[:, 0] = 0.0
        return ActOutput(decision=torch.zeros(n, dtype=torch.int64), log_probs=log_probs, value=torch.zeros(n),
                         path=path.clone(), speed_waypoints=waypoints.clone().float())


def build_policy(cfg: Any, ckpt: str | None, policy: str | None, device: str = "cpu",
                 runtime: dict | None = None) -> Any:
    """The policy object ``PolicyDriver`` calls (``preprocess`` + ``act``): built-in or from a checkpoint.

    A checkpoint is loaded as ``cfg.model`` says: a MindDrive model comes wrapped in
    :class:`minddrive.models.policy.MindDrivePolicy` (the policy contract), a model class with its
    own ``from_checkpoint`` (e.g. the RL research ``StateFeaturePolicy``) is its own policy. The
    same loader serves RL rollouts, so evaluation and rollouts drive the same object. ``device`` and
    ``runtime`` (``MindDrivePolicy``'s dtype, merged adapters, ...) as ``eval_driver`` sets them.
    """
    if policy == "constant":
        return ConstantPolicy()
    if policy == "expert":
        try:
            from minddrive.sim.expert import ExpertPolicy
        except ImportError as exc:
            raise UserError(f"--policy expert: the embedded simulator's expert is not available ({exc})") from None
        return ExpertPolicy()
    from minddrive.rollout.policy import load_policy, policy_module

    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"eval_driver.device: {device!r} but torch sees no CUDA device here; "
                        "pass --cfg-options eval_driver.device=cpu")
    loaded = load_policy(cfg, ckpt, device=str(device), runtime=runtime)
    policy_module(loaded).eval()
    return loaded


def build_envs(cfg: Any, workers: int) -> Any:
    """``workers`` simulator worlds from ``cfg.env``: one batched ``VecDriveEnv`` for the embedded simulator."""
    from minddrive.config import Config
    from minddrive.rollout.worlds import build_worlds

    env_cfg = dict(cfg.get("env") or dict(type="EmbeddedDriveEnv"))
    return build_worlds(Config(dict(env=env_cfg)), workers)


def policy_driver(cfg: Any, ckpt: str | None, policy: str | None, workers: int) -> DriveFn:
    """Drive routes with :class:`minddrive.rollout.driver.PolicyDriver` (the one closed-loop loop) in eval mode.

    Decision interval and controller come from ``cfg.rollout`` (as in RL rollouts), overridable
    by ``cfg.eval_driver``, so a policy is evaluated exactly as it was trained; ``eval_driver.device``
    and ``eval_driver.policy`` (runtime keys as ``rollout.policy``) say where and how the model runs
    (default: the CPU, the model as it is).
    """
    from minddrive.rollout.driver import PolicyDriver
    from minddrive.rollout.policy import import_object

    rollout = dict(cfg.get("rollout") or {})
    driver_cfg = dict(decision_interval=rollout.get("decision_interval", 5))
    if rollout.get("controller"):
        driver_cfg["controller_factory"] = import_object(rollout["controller"])
    driver_cfg.update(dict(cfg.get("eval_driver") or {}))
    runtime, device = driver_cfg.pop("policy", None), driver_cfg.pop("device", "cpu")
    device = "cpu" if policy else device  # the built-in policies compute on the host
    policy_obj = build_policy(cfg, ckpt, policy, device=device, runtime=runtime)
    driver = PolicyDriver(build_envs(cfg, workers), policy_obj, sample=False, stop_on_penalty=False, device=device,
                          **driver_cfg)

    def drive(routes: list[SuiteRoute], on_record: Callable[[SuiteRoute, dict], None]) -> None:
        jobs = [dict(seed=r.seed, options=r.reset_options(), route=r) for r in routes]
        try:
            driver.run(jobs, on_episode_end=lambda result: on_record(result.job["route"], result.record))
        finally:
            driver.close()

    return drive


def evaluate(cfg: Any, ckpt: str | None = None, suite: str | Suite = DEFAULT_SUITE, workers: int = 1,
             out: str | os.PathLike = "work_dirs/eval", policy: str | None = None, limit: int | None = None,
             drive: DriveFn | None = None, progress: bool = True, overwrite: bool = False):
    """Evaluate a checkpoint (or a built-in policy) on ``suite``; resumable; returns the score dict.

    The dict is ``OUT/score.json``: ``ScoreReport.to_dict()`` (what ``minddrive score --json``
    prints) plus ``suite`` (name, version, sha256, routes) and ``policy``. ``workers`` is the number
    of simulator worlds driven side by side (one batched policy call per decision tick).
    ``limit`` evaluates only the suite's first routes (quick runs); the score's official
    denominator is then that prefix; routes driven earlier beyond it stay in the results file.
    ``drive`` replaces the PolicyDriver (tests, other backends).

    ``out`` is this evaluation's own folder: its owner record names the suite, the policy, the
    checkpoint's content and the config's content (``run_identity``); a folder of another run, or one
    not written by ``eval``, is refused in one line (moved aside with ``overwrite``).
    """
    from minddrive.eval.scoring import score_records

    if workers < 1:
        raise UserError(f"--workers {workers}: expected at least 1")
    if limit is not None and limit < 0:
        raise UserError(f"--limit {limit}: expected a positive number of routes")
    policy_id = policy_identity(ckpt, policy)
    full = suite if isinstance(suite, Suite) else load_suite(suite)
    suite = full.head(limit)
    out = Path(out)
    identity = run_identity(cfg, ckpt, policy, full)
    claim_dir(out, "eval", identity, overwrite=overwrite)
    results = ResultFile.open(out / RESULT_FILE, full, policy_id, identity, wanted=suite)
    pending = results.pending()
    index_of = {r.route_id: i for i, r in enumerate(full.routes)}
    if pending:
        drive = drive or policy_driver(cfg, ckpt, policy, workers)
        bar = _progress_bar(len(suite.routes), len(suite.routes) - len(pending), progress)
        started = time.time()

        def on_record(route: SuiteRoute, record: dict) -> None:
            record = normalise_record(record, route, index_of[route.route_id])
            record["meta"].setdefault("duration_system", round(time.time() - started, 3))
            results.add(route, record)
            bar.update(1)
            bar.set_postfix_str(f"{route.route_id} {record['status']} DS {record['scores']['score_composed']:.1f}")

        try:
            drive(pending, on_record)
        finally:
            bar.close()
            results.finish()
    else:
        results.finish()
    still_pending = results.pending()
    if still_pending:
        raise UserError(f"{results.path}: {len(still_pending)} routes were not driven (e.g. "
                        f"{still_pending[0].route_id}); re-run the same command to resume")
    records = results.ordered_records(suite)
    report = score_records(records, expected=len(suite.routes))
    score = dict(report.to_dict(), suite=suite.identity(), policy=policy_id,
                 failure_reasons=failure_reasons(records))
    if score["failure_reasons"]:
        score["warnings"] = list(score["warnings"]) + [
            f"{count} routes failed: {reason}" for reason, count in score["failure_reasons"].items()]
    write_json(out / SCORE_FILE, score)
    return score


def run_identity(cfg: Any, ckpt: str | None, policy: str | None, suite: Suite) -> dict:
    """What produced an evaluation folder: suite, policy, and the content (not the path) of checkpoint and config."""
    from minddrive.utils.io import config_sha256, hash_tree

    identity = {"suite": suite.sha256, "policy": f"builtin:{policy}" if policy else "checkpoint",
                "config_sha256": config_sha256(cfg)}
    if not policy and ckpt:
        identity["checkpoint_sha256"] = hash_tree(ckpt, skip=("training_state.pt",))
    return identity


def failure_reasons(records: list[dict]) -> dict[str, int]:
    """How many routes ended on each named failure (``meta.failure_reason``, e.g. a non-finite action)."""
    counts: dict[str, int] = {}
    for record in records:
        reason = (record.get("meta") or {}).get("failure_reason")
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def _progress_bar(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="eval routes", unit="route", disable=not enabled, dynamic_ncols=True)


__all__ = ["evaluate", "ResultFile", "normalise_record", "global_record", "global_values",
           "ConstantPolicy", "build_policy", "build_envs", "RERUN_STATUSES", "BUILTIN_POLICIES", "RESULT_FILE", "SCORE_FILE"]
