"""Rollout collection: fill the route queue, run supervised workers, report progress.

``collect(cfg, ckpt, out_dir)`` is what ``minddrive collect`` and the RL loop call. Output::

    out_dir/
      run.json                 config + checkpoint fingerprints (decouple refuses to mix runs)
      collect_config.py        the full config the workers read
      queue.sqlite             the resumable route queue (see minddrive.rl.queue)
      episodes/<route>.pt      one buffer per finished episode (see minddrive.rl.buffer)

Re-running the same command resumes: finished routes are kept, unfinished ones are driven.

Routes (``cfg.rl_routes``):
    ``dict(type="seeds", count=N, seed_start=RL_SEED_START, scenarios=None)``: embedded-simulator
        routes with seeds ``seed_start + offset + k``; scenario types cycle through ``scenarios``
        (default: all 44 Bench2Drive types). Evaluation suites use seeds below
        ``EVAL_SEED_LIMIT`` (100,000) and RL seeds start at ``RL_SEED_START`` (1,000,000), so RL never
        trains on an evaluation route.
    ``dict(type="route_file", path=XML, repetitions=1)``: leaderboard routes (CARLA, or the
        upstream 44-route parity setting).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from minddrive.errors import UserError
from minddrive.rl.buffer import checkpoint_fingerprint, fingerprint
from minddrive.rl.queue import RouteJob, RouteQueue
from minddrive.rl.workers import InProcessPool, LocalWorkerPool, RayWorkerPool, WorkerSpec
from minddrive.rl.buffer import list_episodes
from minddrive.utils.io import claim_dir, read_json, write_json

RUN_FILE = "run.json"
QUEUE_FILE = "queue.sqlite"


def rl_seed_start() -> int:
    from minddrive.eval.suite import RL_SEED_START

    return RL_SEED_START


def make_jobs(routes_cfg: dict, offset: int = 0) -> list[RouteJob]:
    """The route jobs of ``cfg.rl_routes`` (``offset`` shifts seeds, e.g. per RL iteration)."""
    kind = routes_cfg.get("type", "seeds")
    if kind == "seeds":
        from minddrive.eval.suite import interleaved_types

        start = int(routes_cfg.get("seed_start", rl_seed_start())) + int(offset)
        # The embedded simulator builds all 44 Bench2Drive types (21 through stand-ins), so no filtering.
        scenarios = list(routes_cfg.get("scenarios") or interleaved_types())
        return [RouteJob(key=f"seed{start + k}", seed=start + k, options={"scenario": scenarios[k % len(scenarios)]})
                for k in range(int(routes_cfg["count"]))]
    if kind == "route_file":
        from minddrive.sim.routes import parse_routes

        path = routes_cfg.get("path")
        if not path:
            raise UserError("rl_routes.path = None: expected a route XML file (upstream's rollout routes: "
                            "tests/fixtures/minddrive_release/rollout_routes.xml)")
        routes = parse_routes(path)
        repetitions = int(routes_cfg.get("repetitions", 1))
        return [RouteJob(key=f"{route.route_id(rep)}_it{offset}", seed=int(routes_cfg.get("seed", 0)) + rep + offset,
                         options={"route_file": str(path), "route_id": str(route.id)})
                for rep in range(repetitions) for route in routes]
    raise UserError(f"rl_routes.type: expected 'seeds' or 'route_file', got {kind!r}")


def run_fingerprint(cfg: Any, ckpt: str | os.PathLike | None) -> dict:
    """What makes buffers of two collections compatible: same model/reward/rollout config, same weights."""
    relevant = {key: cfg.get(key) for key in ("model", "reward", "env") if cfg.get(key) is not None}
    relevant["decision_interval"] = cfg.rollout.get("decision_interval", 5)
    return dict(config_fingerprint=fingerprint(relevant), ckpt=str(ckpt) if ckpt else None,
                ckpt_fingerprint=checkpoint_fingerprint(ckpt))


def collect(cfg: Any, ckpt: str | os.PathLike | None, out_dir: str | os.PathLike, num_workers: int | None = None,
            ray_address: str | None = None, route_offset: int = 0, show_progress: bool = True,
            overwrite: bool = False) -> dict:
    """Drive every route of ``cfg.rl_routes`` once with ``ckpt``'s policy; returns a summary.

    ``out_dir`` is this collection's own folder (refused if it is another command's or nobody's, moved
    aside with ``overwrite``); episodes that produced no decision step make it an error.
    """
    out_dir = Path(out_dir)
    rollout = cfg.rollout
    if ckpt is not None and not Path(ckpt).is_dir():  # before anything is written: a typo leaves no folder
        raise UserError(f"--ckpt {ckpt}: checkpoint directory not found")
    run_meta = run_fingerprint(cfg, ckpt)
    claim_dir(out_dir, "collect", overwrite=overwrite)
    run_path = out_dir / RUN_FILE
    if run_path.exists():
        previous = read_json(run_path)
        compared = ("config_fingerprint", "ckpt_fingerprint")
        if {k: previous.get(k) for k in compared} != {k: run_meta[k] for k in compared}:
            if list_episodes(out_dir):
                what = "config" if previous.get("config_fingerprint") != run_meta["config_fingerprint"] else "checkpoint"
                raise UserError(f"{run_path}: this folder holds rollouts of another {what} "
                                f"({previous.get('ckpt')}); use a new --out folder, or --overwrite to move it aside")
            # A start that produced no episode (e.g. a checkpoint that failed to load): restart it afresh.
            (out_dir / QUEUE_FILE).unlink(missing_ok=True)
    write_json(run_path, dict(run_meta, route_offset=route_offset))
    config_path = out_dir / "collect_config.py"
    dump_config(cfg, config_path)

    queue = RouteQueue(out_dir / QUEUE_FILE, lease_s=rollout.get("lease_s", 300.0),
                       max_attempts=rollout.get("max_attempts", 3))
    queue.add(make_jobs(dict(cfg.rl_routes), offset=route_offset))
    workers = int(num_workers if num_workers is not None else rollout.get("num_workers", 1))
    device = rollout.get("device", "cpu")
    specs = [WorkerSpec(config=str(config_path), ckpt=str(ckpt) if ckpt else None, out_dir=str(out_dir),
                        worker_id=i, run_meta=run_meta, device=device, threads=rollout.get("threads_per_worker", 1))
             for i in range(workers)]
    ray_address = ray_address or rollout.get("ray_address")
    if workers == 0:  # in this process (tests, debugging): no supervision, same worker code
        pool = InProcessPool(WorkerSpec(config=str(config_path), ckpt=str(ckpt) if ckpt else None,
                                        out_dir=str(out_dir), worker_id=0, run_meta=run_meta, device=device,
                                        threads=rollout.get("threads_per_worker", 1)))
    elif ray_address:
        pool: Any = RayWorkerPool(specs, queue, ray_address, gpus_per_worker=rollout.get("gpus_per_worker", 0.0),
                                  max_restarts=rollout.get("max_restarts", 10))
    else:
        pool = LocalWorkerPool(specs, queue, max_restarts=rollout.get("max_restarts", 10))

    total = sum(queue.counts().values())
    started, steps_at_start = time.monotonic(), queue.done_summary()[2]
    bar = tqdm(total=total, desc="collect", unit="ep", disable=not show_progress, dynamic_ncols=True)
    if queue.unfinished():  # a finished collection re-run starts no worker
        pool.start()
    try:
        while True:
            running = pool.poll()
            done, mean_return, steps = queue.done_summary()
            rate = (steps - steps_at_start) / max(time.monotonic() - started, 1e-6)
            bar.set_postfix(ret=f"{mean_return:.3f}", steps_s=f"{rate:.1f}", refresh=False)
            bar.update(done + queue.counts()["failed"] - bar.n)
            if not running:
                break
            time.sleep(0.5)
    finally:
        pool.stop()
        bar.close()
    counts = queue.counts()
    done, mean_return, steps = queue.done_summary()
    elapsed = time.monotonic() - started
    summary = dict(out_dir=str(out_dir), episodes=done, failed=counts["failed"], unfinished=counts["pending"] + counts["claimed"],
                   mean_return=mean_return, decision_steps=steps, seconds=elapsed,
                   decision_steps_per_s=(steps - steps_at_start) / max(elapsed, 1e-6), restarts=pool.restarts,
                   empty_episodes=queue.empty_done())
    write_json(out_dir / "collect_summary.json", summary)
    if total and not done and not summary["unfinished"]:
        raise UserError(f"{out_dir}: 0 of {total} episodes produced ({counts['failed']} routes failed in the workers)")
    if summary["empty_episodes"]:
        raise UserError(f"{out_dir}: {summary['empty_episodes']} of {done} episodes produced no decision step "
                        "(their records in episodes/*.pt name the reason, e.g. a non-finite action)")
    if summary["unfinished"]:
        raise UserError(f"{out_dir}: {summary['unfinished']} routes unfinished after {pool.restarts} worker restarts; "
                        "re-run the same command to resume")
    return summary


def dump_config(cfg: Any, path: Path) -> None:
    """Write ``cfg`` as a loadable Python config (without the ``filename`` key ``load_config`` adds)."""
    from mmengine.config import Config

    from minddrive.utils.io import atomic_path

    clean = Config({k: v for k, v in cfg.to_dict().items() if k != "filename"})
    with atomic_path(path) as tmp:
        clean.dump(str(tmp))


def load_run_meta(out_dir: str | os.PathLike) -> dict:
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        raise UserError(f"{out_dir}: not a rollout folder (no {RUN_FILE})")
    return read_json(path)


__all__ = ["collect", "make_jobs", "run_fingerprint", "load_run_meta"]
