"""The iterated RL loop: collect -> decouple -> PPO -> evaluate, K times.

Upstream collected once and trained once; here every iteration's rollout workers load the newest
weights. Layout of ``work_dir``::

    baseline/eval/                    the IL checkpoint's closed-loop results.json + score.json (iteration 0)
    iter_01/rollouts/                 collector output (episodes/, queue.sqlite, run.json)
    iter_01/decoupled/dataset_index.pkl
    iter_01/ppo/ckpt/                 this iteration's checkpoint; ppo/tensorboard, ppo/ppo_log.jsonl
    iter_01/eval/                     its closed-loop results.json + score.json on the held-out suite
    iter_01/done.json                 written last: an iteration with it is never redone
    progress.json, progress.png       Driving Score and mean return per iteration

``work_dir`` is this command's own folder (``utils.io.claim_dir``): its owner record names the
config and the IL checkpoint content, so a rerun of the same run resumes while one from other
weights or another config is refused in one line (``overwrite`` moves the folder aside); a lock
stops two loops writing into it at once. Each step's folder has its own owner record.

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
from minddrive.rl.settings import ReturnParams, config_file
from minddrive.rl.buffer import checkpoint_fingerprint
from minddrive.utils.io import claim_dir, config_sha256, read_json, run_lock, write_json


def evaluate_checkpoint(cfg: Any, ckpt: str | os.PathLike, out_dir: str | os.PathLike,
                        show_progress: bool = True) -> dict:
    """Closed-loop scores of ``ckpt`` on the held-out suite (``cfg.rl_eval``), by the one evaluator.

    Calls :func:`minddrive.eval.closed_loop.evaluate` (argmax decisions, full leaderboard episodes,
    resumable ``results.json``); every iteration is scored on the same fixed suite prefix.
    """
    from minddrive.eval.closed_loop import evaluate

    eval_cfg = dict(cfg.get("rl_eval", {}))
    return evaluate(cfg, ckpt=str(ckpt), suite=eval_cfg.get("suite", "sim-b2d-mini"),
                    workers=int(eval_cfg.get("num_envs", 4)), out=out_dir, limit=eval_cfg.get("limit"),
                    progress=show_progress)


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


def rl_loop(cfg: Any, il_ckpt: str | os.PathLike, work_dir: str | os.PathLike, iterations: int | None = None,
            num_workers: int | None = None, ray_address: str | None = None, show_progress: bool = True,
            overwrite: bool = False) -> dict:
    """Run (or resume) ``iterations`` RL iterations from ``il_ckpt`` (default: ``cfg.rl_iterations``).

    Returns ``dict(iterations=[...], final_ckpt, baseline_driving_score, final_driving_score)``; each
    iteration entry (0 = the IL checkpoint) has ``ckpt``, ``driving_score``, ``success_rate``,
    ``route_completion`` and ``mean_return`` (rollout mean, None for iteration 0), plus rollout and
    PPO statistics for k >= 1.
    """
    if iterations is None:
        iterations = int(cfg.get("rl_iterations", 3))
    from minddrive.rl.ppo import ppo_settings

    if not Path(il_ckpt).exists():
        raise UserError(f"--ckpt {il_ckpt}: checkpoint not found")
    returns = ReturnParams.from_config(cfg.get("rl"), config_file(cfg))
    ppo_settings(cfg)  # a bad PPO setting fails now, not after the baseline evaluation and the first rollouts
    work_dir = Path(work_dir)
    identity = dict(config_sha256=config_sha256(cfg), checkpoint_sha256=checkpoint_fingerprint(il_ckpt))
    claim_dir(work_dir, "rl-loop", identity, overwrite=overwrite)
    with run_lock(work_dir, "RL loop"):
        return _rl_loop(cfg, il_ckpt, work_dir, iterations, returns, num_workers, ray_address, show_progress)


def _rl_loop(cfg: Any, il_ckpt: str | os.PathLike, work_dir: Path, iterations: int, returns: ReturnParams,
             num_workers: int | None, ray_address: str | None, show_progress: bool) -> dict:
    from minddrive.rl.collector import collect
    from minddrive.rl.decouple import INDEX_NAME, decouple
    from minddrive.rl.ppo import train_ppo

    per_iteration = int(cfg.rl_routes.get("count", 0)) if cfg.rl_routes.get("type", "seeds") == "seeds" else 1

    baseline = evaluate_checkpoint(cfg, il_ckpt, work_dir / "baseline" / "eval", show_progress)  # resumes
    progress = [dict(iteration=0, ckpt=str(il_ckpt), driving_score=baseline["driving_score"],
                     success_rate=baseline["success_rate"], route_completion=baseline["route_completion"],
                     mean_return=None)]
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
            decouple([it / "rollouts"], it / "decoupled", gamma=returns.gamma, gae_lambda=returns.gae_lambda,
                     show_progress=show_progress)
            ppo = train_ppo(cfg, ckpt, it / "decoupled" / INDEX_NAME, it / "ppo", show_progress=show_progress)
            scores = evaluate_checkpoint(cfg, ppo["ckpt"], it / "eval", show_progress)
            done = dict(iteration=k, ckpt=ppo["ckpt"], driving_score=scores["driving_score"],
                        success_rate=scores["success_rate"], route_completion=scores["route_completion"],
                        mean_return=summary["mean_return"],
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
