"""The demo's report: ``report.json``, ``report.md``, curves and before/after-RL pictures of one route."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from minddrive.constants import ABILITY_NAMES
from minddrive.eval.compare import paired_route_comparison
from minddrive.utils.io import write_json

GIF_ROUTE_INDEX = 0  # the first held-out suite route is the one drawn before and after RL


def build_report(paths, settings, il: dict, rl: dict, scores: dict, rl_cfg: Any) -> dict[str, Any]:
    """``rl_cfg``: the run's RL config (``minddrive.demo.rl_config``), which drives the before/after pictures."""
    report_dir = Path(paths.report)
    report_dir.mkdir(parents=True, exist_ok=True)
    pictures = _copy_curves(il, rl, report_dir)
    pictures += _before_after_gifs(rl_cfg, il_ckpt=str(paths.converted), rl_ckpt=rl["ckpt"], out=report_dir)
    delta = scores["rl"]["driving_score"] - scores["il"]["driving_score"]
    paired = paired_route_comparison(Path(paths.rl) / "baseline" / "eval" / "results.json",
                                     Path(paths.rl) / f"iter_{settings.rl_iterations:02d}" / "eval" / "results.json",
                                     seed=settings.seed)
    report = {
        "il": scores["il"],
        "rl": scores["rl"],
        "driving_score_gain": round(delta, 2),
        # "Improved" means the per-route paired interval lies above zero, not merely a higher mean.
        "rl_improved": bool(paired["ci95"][0] > 0),
        "paired": paired,
        "openloop_il": il.get("openloop"),
        "rl_iterations": rl.get("progress"),
        "settings": dict(settings.__dict__),
        "pictures": pictures,
    }
    write_json(Path(paths.root) / "report.json", report)
    (report_dir / "report.md").write_text(_markdown(report))
    return dict(report=str(Path(paths.root) / "report.json"), markdown=str(report_dir / "report.md"))


def _copy_curves(il: dict, rl: dict, out: Path) -> list[str]:
    copied = []
    for stage, src in enumerate(il.get("loss_curves", []), start=1):
        if Path(src).is_file():
            dst = out / f"il_stage{stage}_loss.png"
            shutil.copyfile(src, dst)
            copied.append(dst.name)
    if rl.get("plot") and Path(rl["plot"]).is_file():
        shutil.copyfile(rl["plot"], out / "rl_progress.png")
        copied.append("rl_progress.png")
    return copied


def _before_after_gifs(cfg: Any, il_ckpt: str, rl_ckpt: str, out: Path) -> list[str]:
    """Drive the same held-out route with the IL and the RL policy and animate both (BEV with the plan)."""
    from minddrive.eval.suite import load_suite
    from minddrive.rollout.driver import PolicyDriver
    from minddrive.rollout.policy import load_policy
    from minddrive.rollout.worlds import build_worlds
    from minddrive.sim.viewer import render_episode

    route = load_suite("sim-b2d-mini").routes[GIF_ROUTE_INDEX]
    written = []
    for name, ckpt in (("il", il_ckpt), ("rl", rl_ckpt)):
        policy = load_policy(cfg, ckpt)
        policy.eval()
        worlds = build_worlds(cfg, 1)
        driver = PolicyDriver(worlds, policy, decision_interval=cfg.rollout.get("decision_interval", 5), sample=False)
        frames, captions = [], []

        def capture() -> None:
            scene = driver.envs.snapshot(0)
            frames.append(scene)
            captions.append(f"{name.upper()} policy")

        records = driver.run([dict(seed=route.seed, options=route.reset_options(), route=route)], on_tick=capture)
        driver.close()
        status = records[0]["status"] if records else "?"
        captions = [f"{c} - {status}" for c in captions]
        path = out / f"route_{name}.gif"
        render_episode(frames[::2], path, fps=5.0, size_px=320, captions=captions[::2])
        written.append(path.name)
    return written


def _row(name: str, score: dict) -> list[str]:
    abilities = score.get("abilities") or {}
    cells = [name, f"{score['driving_score']:.2f}", f"{score['success_rate']:.2f}"]
    cells += ["-" if abilities.get(a) is None else f"{abilities[a]:.1f}" for a in ABILITY_NAMES]
    return cells


def summary_table(report: dict[str, Any]) -> str:
    header = ["policy", "DS", "SR %"] + [a.replace("_", " ") for a in ABILITY_NAMES]
    rows = [_row("IL", report["il"]), _row("IL + RL", report["rl"])]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    n = report["il"].get("num_routes_expected") or report["il"].get("num_routes")
    openloop = report.get("openloop_il") or {}
    l2 = (openloop.get("model") or {}).get("l2_2s") if isinstance(openloop.get("model"), dict) else openloop.get("l2_2s")
    verdict = (f"RL raised the Driving Score by {report['driving_score_gain']:+.2f} on {n} held-out routes"
               if report["rl_improved"] else
               f"RL did NOT significantly raise the Driving Score ({report['driving_score_gain']:+.2f} on {n} "
               f"held-out routes; see the paired interval below)")
    tail = [verdict]
    paired = report.get("paired")
    if paired:
        significant = paired["ci95"][0] > 0 or paired["ci95"][1] < 0
        tail.append(f"per-route paired gain {paired['mean_gain']:+.2f} DS, 95 % bootstrap interval "
                    f"[{paired['ci95'][0]:+.2f}, {paired['ci95'][1]:+.2f}] ({'excludes' if significant else 'includes'} 0); "
                    f"RL better on {paired['wins']} routes, worse on {paired['losses']}")
    if l2 is not None:
        tail.append(f"open-loop L2 at 2 s (IL action expert): {l2:.3f} m")
    return "\n".join(lines + [""] + tail)


def _markdown(report: dict[str, Any]) -> str:
    table = summary_table(report)
    iterations = report.get("rl_iterations") or []
    rows = "\n".join(f"| {p['iteration']} | {p['driving_score']:.2f} | {p['success_rate']:.2f} | "
                     f"{'-' if p.get('mean_return') is None else format(p['mean_return'], '.3f')} |"
                     for p in iterations)
    pictures = "\n".join(f"![{name}]({name})" for name in report.get("pictures", []))
    return f"""# MindDrive demo report

Tiny MindDrive on the embedded simulator (CPU). Closed-loop scores on held-out `sim-b2d-mini` suite
routes (argmax decisions), computed by `minddrive score` rules (Bench2Drive's).

```
{table}
```

## RL iterations (held-out evaluation inside the loop)

| iteration | DS | SR % | mean rollout return |
|---|---|---|---|
{rows}

## Pictures

{pictures}

Settings: `{report['settings']}`
"""
