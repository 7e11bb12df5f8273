"""The iterated RL loop: collect -> decouple -> PPO -> evaluate, K times.

Upstream collected once and trained once; here every iteration's rollout workers load the newest
weights. Layout of ``work_dir``::

    baseline/eval.json                the IL checkpoint's closed-loop scores (iteration 0)
    iter_01/rollouts/                 collector output (episodes/, queue.sqlite, run.json)
    iter_01/decoupled/dataset_index.pkl
    iter_01/ppo/ckpt/                 this iteration's checkpoint; ppo/tensorboard, ppo/ppo_log.jsonl
    iter_01/eval.json                 its closed-loop scores on the held-out suite
    iter_01/done.json                 written last: an iteration with it is never redone
    progress.json, progress.png       Driving Score and mean return per iteration

Routes: iteration k drives ``cfg.rl_routes`` shifted by ``(k - 1) * count`` seeds, so every
iteration sees fresh routes, all at seeds >= RL_SEED_START, disjoint from the evaluation suite's
seeds (< EVAL_SEED_LIMIT). The parity config replaces them with the upstream 44-route XML.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from minddrive.errors import UserError
from minddrive.utils.io import read_json, write_json


def evaluate_checkpoint(cfg: Any, ckpt: str | os.PathLike, out_path: str | os.PathLike,
                        show_progress: bool = True) -> dict:
    """Closed-loop scores of ``ckpt`` on the held-out suite (argmax decisions, full episodes)."""
    import torch
    from tqdm import tqdm

    from minddrive.eval.driver import PolicyDriver
    from minddrive.eval.scoring import score_records
    from minddrive.eval.suite import load_suite
    from minddrive.rl.workers import build_worlds, import_object, load_policy, policy_module

    eval_cfg = dict(cfg.get("rl_eval", {}))
    suite = load_suite(eval_cfg.get("suite", "sim-b2d-mini"))
    routes = list(suite.routes)
    if cfg.env.get("type") == "EmbeddedDriveEnv":
        # The suite lists all 44 Bench2Drive types; the embedded simulator builds a subset of them.
        from minddrive.sim.scenarios import SCENARIO_TYPES

        routes = [r for r in routes if r.scenario_type in SCENARIO_TYPES]
    routes = routes[:eval_cfg["limit"]] if eval_cfg.get("limit") else routes
    torch.set_num_threads(int(eval_cfg.get("threads", 1)))
    policy = load_policy(cfg, ckpt)
    policy_module(policy).eval()
    worlds = build_worlds(cfg, min(int(eval_cfg.get("num_envs", 4)), len(routes)))
    controller = cfg.rollout.get("controller")
    driver = PolicyDriver(worlds, policy, decision_interval=cfg.rollout.get("decision_interval", 5), sample=False,
                          stop_on_penalty=False, controller_factory=import_object(controller) if controller else None)
    jobs = [dict(key=r.route_id, seed=r.seed, options=r.reset_options(), route=r) for r in routes]
    bar = tqdm(total=len(jobs), desc="eval", unit="route", disable=not show_progress, leave=False)
    records = []

    def keep(result) -> None:
        record = dict(result.record)
        # The suite fixes each route's identity; the env's record may not know it.
        record["route_id"], record["scenario_name"] = result.job["route"].route_id, result.job["route"].scenario_name
        records.append(record)
        bar.update(1)

    driver.run(jobs, on_episode_end=keep)
    bar.close()
    report = score_records(records, expected=len(routes))
    result = dict(ckpt=str(ckpt), suite=dict(suite.identity(), routes_driven=[r.route_id for r in routes]), driving_score=report.driving_score,
                  success_rate=report.success_rate, route_completion=report.route_completion,
                  infraction_penalty=report.infraction_penalty_evaluated, records=records)
    write_json(out_path, result)
    return result


def _plot(progress: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minddrive.utils.io import atomic_path

    iters = [p["iteration"] for p in progress]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(iters, [p["driving_score"] for p in progress], "o-", color="tab:blue", label="Driving Score")
    ax.set_xlabel("RL iteration (0 = IL checkpoint)")
    ax.set_ylabel("Driving Score", color="tab:blue")
    twin = ax.twinx()
    returns = [(p["iteration"], p["mean_return"]) for p in progress if p.get("mean_return") is not None]
    if returns:
        twin.plot(*zip(*returns), "s--", color="tab:orange", label="mean return")
    twin.set_ylabel("mean rollout return", color="tab:orange")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def rl_loop(cfg: Any, il_ckpt: str | os.PathLike, work_dir: str | os.PathLike, iterations: int,
            num_workers: int | None = None, ray_address: str | None = None, show_progress: bool = True) -> dict:
    """Run (or resume) ``iterations`` RL iterations from ``il_ckpt``; returns the per-iteration progress."""
    from minddrive.rl.collector import collect
    from minddrive.rl.decouple import INDEX_NAME, decouple
    from minddrive.rl.ppo import train_ppo

    if not Path(il_ckpt).exists():
        raise UserError(f"--ckpt {il_ckpt}: checkpoint not found")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    gamma, gae_lambda = float(cfg.rl.get("gamma", 0.99)), float(cfg.rl.get("gae_lambda", 0.95))
    per_iteration = int(cfg.rl_routes.get("count", 0)) if cfg.rl_routes.get("type", "seeds") == "seeds" else 1

    baseline_path = work_dir / "baseline" / "eval.json"
    baseline = read_json(baseline_path) if baseline_path.exists() else \
        evaluate_checkpoint(cfg, il_ckpt, baseline_path, show_progress)
    progress = [dict(iteration=0, ckpt=str(il_ckpt), driving_score=baseline["driving_score"],
                     success_rate=baseline["success_rate"], mean_return=None)]
    ckpt: Path | str = il_ckpt
    for k in range(1, iterations + 1):
        it = work_dir / f"iter_{k:02d}"
        done_path = it / "done.json"
        if done_path.exists():
            done = read_json(done_path)
        else:
            started = time.monotonic()
            summary = collect(cfg, ckpt, it / "rollouts", num_workers=num_workers, ray_address=ray_address,
                              route_offset=(k - 1) * per_iteration, show_progress=show_progress)
            decouple([it / "rollouts"], it / "decoupled", gamma=gamma, gae_lambda=gae_lambda,
                     show_progress=show_progress)
            ppo = train_ppo(cfg, ckpt, it / "decoupled" / INDEX_NAME, it / "ppo", show_progress=show_progress)
            scores = evaluate_checkpoint(cfg, ppo["ckpt"], it / "eval.json", show_progress)
            done = dict(iteration=k, ckpt=ppo["ckpt"], driving_score=scores["driving_score"],
                        success_rate=scores["success_rate"], mean_return=summary["mean_return"],
                        episodes=summary["episodes"], decision_steps_per_s=summary["decision_steps_per_s"],
                        ppo={key: ppo[key] for key in ("approx_kl", "clip_fraction", "entropy", "explained_variance")
                             if key in ppo},
                        seconds=time.monotonic() - started)
            write_json(done_path, done)
        ckpt = done["ckpt"]
        progress.append(done)
        if show_progress:
            print(f"rl-loop: iteration {k}: DS {done['driving_score']:.2f} SR {done['success_rate']:.1f} "
                  f"mean return {done['mean_return']:.3f}")
    write_json(work_dir / "progress.json", progress)
    _plot(progress, work_dir / "progress.png")
    return dict(iterations=progress, final_ckpt=str(ckpt), baseline_driving_score=progress[0]["driving_score"],
                final_driving_score=progress[-1]["driving_score"])
