"""``minddrive demo``: the whole MindDrive pipeline on the embedded simulator, tiny model, CPU.

Steps (each resumable: a finished step leaves ``WORK_DIR/steps/<name>.json`` and is skipped on re-run):
  1. data      expert-driven simulator clips in the Bench2Drive layout + Chat-B2D style VQA
  2. infos     the train/val info index
  3. il        imitation stages 1, 2, 3 (only the action expert's LoRA + vision/heads train)
  4. convert   action expert -> decision expert + value net
  5. rl        K iterations of collect -> decouple -> PPO (on routes disjoint from the eval suite)
  6. eval      the IL and the RL checkpoints on the held-out embedded suite
  7. report    report.json, report.md, curves (PNG), BEV GIFs of one route before / after RL
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from minddrive.errors import UserError
from minddrive.utils.io import write_json

CONFIG_DIR = Path(__file__).resolve().parent.parent / "adzoo" / "minddrive" / "configs"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run; ``quick`` is the CI-sized variant used by ``make test``."""

    routes: int            # simulator clips for imitation
    il_iters: tuple[int, int, int]  # iterations of stages 1, 2, 3
    rl_iterations: int
    rl_episodes: int       # rollout episodes per RL iteration
    eval_routes: int       # held-out suite routes evaluated (0 = the whole suite)
    workers: int           # processes for data writing / indexing
    max_frames: int | None = None  # cap on 10 Hz frames per clip (None: the whole route)
    openloop_samples: int = 200
    seed: int = 0

    @classmethod
    def full(cls) -> "DemoSettings":
        return cls(routes=32, il_iters=(10, 500, 60), rl_iterations=2, rl_episodes=32, eval_routes=44, workers=2,
                   max_frames=200)

    @classmethod
    def quick(cls) -> "DemoSettings":
        return cls(routes=4, il_iters=(2, 4, 4), rl_iterations=1, rl_episodes=2, eval_routes=3, workers=1,
                   max_frames=40, openloop_samples=16)


class StepRunner:
    """Runs named steps once; a finished step's result is read back instead of recomputed."""

    def __init__(self, work_dir: Path, total: int):
        self.work_dir = work_dir
        self.total = total
        self.index = 0
        (work_dir / "steps").mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, func: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.index += 1
        marker = self.work_dir / "steps" / f"{name}.json"
        if marker.exists():
            print(f"[{self.index}/{self.total}] {name}: done earlier, skipping ({marker})", flush=True)
            return json.loads(marker.read_text())
        print(f"[{self.index}/{self.total}] {name} ...", flush=True)
        start = time.time()
        try:
            result = func()
        except UserError as exc:
            raise UserError(f"demo step '{name}' failed: {exc}") from None
        except Exception as exc:
            log = self.work_dir / "steps" / f"{name}.error.log"
            log.write_text(traceback.format_exc())
            raise UserError(f"demo step '{name}' failed: {type(exc).__name__}: {exc} (traceback in {log}); "
                            f"re-run to resume from this step") from None
        result = dict(result, seconds=round(time.time() - start, 1))
        write_json(marker, result)
        print(f"[{self.index}/{self.total}] {name}: finished in {result['seconds']:.0f} s", flush=True)
        return result


def add_arguments(parser, verb: str) -> None:
    parser.add_argument("--work-dir", default="work_dirs/demo", help="where every artefact goes (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (a few minutes)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    settings = DemoSettings.quick() if args.quick else DemoSettings.full()
    settings = DemoSettings(**{**settings.__dict__, "seed": args.seed})
    report = run_demo(Path(args.work_dir), settings, quick=args.quick)
    print_summary(report)
    return 0


def run_demo(work_dir: Path, settings: DemoSettings, quick: bool) -> dict[str, Any]:
    """Run (or resume) every step; returns the report dict also written to ``work_dir/report.json``."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two cores: threads fight each other (see benchmarks/RESULTS.md)
    import torch

    torch.set_num_threads(1)
    work_dir = Path(work_dir)
    paths = DemoPaths(work_dir)
    step = StepRunner(work_dir, total=7)
    step("data", lambda: make_data(paths, settings))
    step("infos", lambda: make_infos(paths, settings))
    il = step("il", lambda: imitation(paths, settings))
    converted = step("convert", lambda: convert(paths, il["ckpt"]))
    rl = step("rl", lambda: reinforcement(paths, settings, converted["ckpt"]))
    scores = step("eval", lambda: closed_loop(paths, settings, converted["ckpt"], rl["ckpt"]))
    step("report", lambda: write_report(paths, settings, il, rl, scores))
    return json.loads((work_dir / "report.json").read_text())


class DemoPaths:
    """Where each artefact of a demo run lives."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.vqa = self.data / "vqa"
        self.infos = self.data / "infos"
        self.il = root / "il"
        self.converted = root / "il" / "converted"
        self.rl = root / "rl"
        self.eval = root / "eval"
        self.report = root / "report"


def _config(name: str, options: dict[str, Any] | None = None):
    from minddrive.config import load_config

    return load_config(CONFIG_DIR / name, options or {})


def make_data(paths: DemoPaths, settings: DemoSettings) -> dict[str, Any]:
    from minddrive.data.sim_vqa import frame_vqa
    from minddrive.sim.writer import write_dataset

    stage = _config("minddrive_tiny_train_stage2.py")
    height, width = stage.image_size  # write clips at the tiny model's input size: no resize in training
    clips = write_dataset(paths.data, num_routes=settings.routes, seed=settings.seed, vqa_root=paths.vqa,
                          workers=settings.workers, image_size=(height, width),
                          max_frames=settings.max_frames, frame_vqa=frame_vqa)
    return dict(clips=len(clips), root=str(paths.data))


def make_infos(paths: DemoPaths, settings: DemoSettings) -> dict[str, Any]:
    from minddrive.data.infos import build_info_index

    from minddrive.sim.writer import MAPS_DIR

    # The road boundaries come from the HD maps the data step wrote next to the clips.
    summary = build_info_index(paths.data, paths.data / "split.json", paths.infos, vqa_root=str(paths.vqa),
                               workers=settings.workers, map_root=str(paths.data / MAPS_DIR))
    return dict(train=summary["train"], val=summary["val"], skipped=len(summary["skipped"]))


def _stage_options(paths: DemoPaths, stage: int, iters: int) -> dict[str, Any]:
    options: dict[str, Any] = {"work_dir": str(paths.il / f"stage{stage}"), "train_cfg.max_iters": iters,
                               "load_from": str(paths.il / f"stage{stage - 1}") if stage > 1 else None}
    for split in ("train", "val"):
        options.update({f"data.{split}.ann_file": str(paths.infos / f"b2d_infos_{split}.pkl"),
                        f"data.{split}.data_root": str(paths.data), f"data.{split}.vqa_root": str(paths.vqa)})
    return options


def imitation(paths: DemoPaths, settings: DemoSettings) -> dict[str, Any]:
    from minddrive.train import evaluate_open_loop, train

    ckpt = None
    for stage, iters in zip((1, 2, 3), settings.il_iters):
        options = _stage_options(paths, stage, iters)
        cfg = _config(f"minddrive_tiny_train_stage{stage}.py", options)
        print(f"  stage {stage}: {iters} iterations -> {options['work_dir']}", flush=True)
        ckpt = train(cfg, options["work_dir"], resume=True)
    cfg = _config("minddrive_tiny_train_stage3.py", _stage_options(paths, 3, settings.il_iters[2]))
    openloop = evaluate_open_loop(cfg, ckpt, max_samples=settings.openloop_samples)
    return dict(ckpt=str(ckpt), openloop=openloop,
                loss_curves=[str(paths.il / f"stage{s}" / "loss_curves.png") for s in (1, 2, 3)])


def convert(paths: DemoPaths, il_ckpt: str) -> dict[str, Any]:
    from minddrive.models.convert import convert_checkpoint

    report = convert_checkpoint(il_ckpt, paths.converted)
    return dict(ckpt=str(paths.converted), copied=report)


def rl_config(settings: DemoSettings):
    """The tiny RL config at this run's sizes (RL loop, closed-loop evaluation and the report's pictures)."""
    return _config("minddrive_tiny_rl_ppo_train.py",
                   {"rl_routes.count": settings.rl_episodes, "rl_eval.limit": settings.eval_routes or None,
                    "rollout.envs_per_worker": min(4, settings.rl_episodes), "seed": settings.seed})


def reinforcement(paths: DemoPaths, settings: DemoSettings, converted_ckpt: str) -> dict[str, Any]:
    from minddrive.rl.loop import rl_loop

    result = rl_loop(rl_config(settings), converted_ckpt, paths.rl, settings.rl_iterations, num_workers=0)
    return dict(ckpt=result["final_ckpt"], progress=result["iterations"], plot=str(paths.rl / "progress.png"))


def closed_loop(paths: DemoPaths, settings: DemoSettings, il_ckpt: str, rl_ckpt: str) -> dict[str, Any]:
    """Both checkpoints on the same held-out suite routes (argmax decisions), scored as Bench2Drive does.

    The RL loop already evaluated the IL checkpoint (its baseline) and every iteration into resumable
    result files; evaluating into the same folders reads those results back instead of driving again.
    """
    from minddrive.rl.loop import evaluate_checkpoint

    cfg = rl_config(settings)
    last = paths.rl / f"iter_{settings.rl_iterations:02d}" / "eval"
    scores = {}
    for name, ckpt, out in (("il", il_ckpt, paths.rl / "baseline" / "eval"), ("rl", rl_ckpt, last)):
        report = evaluate_checkpoint(cfg, ckpt, out)
        scores[name] = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    return scores


def write_report(paths: DemoPaths, settings: DemoSettings, il: dict, rl: dict, scores: dict) -> dict[str, Any]:
    from minddrive.demo_report import build_report

    return build_report(paths, settings, il, rl, scores, rl_cfg=rl_config(settings))


def print_summary(report: dict[str, Any]) -> None:
    from minddrive.demo_report import summary_table

    print(summary_table(report))
