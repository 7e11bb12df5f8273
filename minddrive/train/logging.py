"""Training logs on the main rank: tqdm bar with ETA, TensorBoard scalars, JSON lines, loss-curve PNG.

Every rank may construct a :class:`TrainLogger`; only the main rank writes. The JSON-lines
file is appended across resumes, so a resumed run may repeat iterations that were logged
after the last checkpoint; readers keep the last record per iteration (see :func:`read_log`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from minddrive.utils.io import atomic_path

LOG_NAME = "train_log.jsonl"
PLOT_NAME = "loss_curves.png"


class TrainLogger:
    def __init__(self, work_dir: str | os.PathLike, enabled: bool, total_iters: int, start_iter: int = 0,
                 tensorboard: bool = True, progress: bool = True):
        self.enabled = enabled
        self.work_dir = Path(work_dir)
        self.jsonl_path = self.work_dir / LOG_NAME
        self._writer = None
        self._bar = None
        self._jsonl = None
        if not enabled:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.jsonl_path, "a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.work_dir / "tensorboard"), purge_step=start_iter + 1)
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_iters, initial=start_iter, desc="train", unit="it", dynamic_ncols=True)

    def log(self, iteration: int, scalars: dict[str, float]) -> None:
        """Record ``scalars`` for optimiser step ``iteration`` (1-based)."""
        if not self.enabled:
            return
        record = {"iter": iteration, **{k: _finite(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key if "/" in key else f"train/{key}", value, iteration)
        if self._bar is not None:
            shown = {k: f"{v:.4g}" for k, v in scalars.items() if k in ("loss", "lr")}
            self._bar.set_postfix(shown, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._jsonl is not None:
            self._jsonl.close()


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSON-lines training log, one per iteration (the last write wins), in order."""
    by_iter: dict[int, dict] = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            by_iter[int(record["iter"])] = record
    return [by_iter[k] for k in sorted(by_iter)]


def plot_loss_curves(log_path: str | os.PathLike, png_path: str | os.PathLike) -> Path | None:
    """Plot every ``loss*`` term (and lr on a second panel) against iteration; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    if not records:
        return None
    keys = sorted({k for r in records for k in r if k.startswith("loss")})
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    for key in keys:
        pts = [(r["iter"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            ax_loss.plot(xs, ys, label=key, linewidth=1.5 if key == "loss" else 1.0)
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log" if all(r.get("loss", 1) and r.get("loss", 1) > 0 for r in records) else "linear")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    lr_pts = [(r["iter"], r["lr"]) for r in records if r.get("lr") is not None]
    if lr_pts:
        ax_lr.plot(*zip(*lr_pts), color="black")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("iteration")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return png_path
