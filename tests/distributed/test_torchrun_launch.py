"""``minddrive_dist_train.sh`` on the tiny IL stage, gloo on CPU: one node with 2 processes, two "nodes" of one
process each on this host (NNODES=2, a shared rendezvous on 127.0.0.1), and DeepSpeed ZeRO-2/3 on 2 processes.
Every launch must train on the same global batch with the same losses as the one-node DDP run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from minddrive.config import load_config
from minddrive.train.logging import read_log

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "b2d_clip"
LAUNCH = REPO / "adzoo" / "minddrive" / "minddrive_dist_train.sh"
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def write_config(tmp_path_factory):
    """``write_config(name, strategy)``: the tiny stage-2 config on the fixture clips, 3 steps of 2 samples per
    process, logging every step; returns the dumped file."""
    from minddrive.data.infos import build_info_index

    root = tmp_path_factory.mktemp("tiny_launch")
    build_info_index(FIXTURE, FIXTURE / "split.json", root / "infos", vqa_root=str(FIXTURE / "vqa"), workers=0,
                     progress=False, log=lambda *_: None)

    def write(name: str, strategy: dict) -> Path:
        opts = {f"data.{split}.{key}": value for split in ("train", "val") for key, value in (
            ("ann_file", str(root / "infos" / f"b2d_infos_{split}.pkl")), ("data_root", str(FIXTURE)),
            ("vqa_root", str(FIXTURE / "vqa")))}
        opts.update({"train_cfg.max_iters": STEPS, "train_cfg.batch_size": 2, "log_config.interval": 1,
                     "log_config.progress_bar": False, "log_config.tensorboard": False, "load_from": None,
                     "checkpoint_config.interval": 1000})
        cfg = load_config(REPO / "adzoo/minddrive/configs/minddrive_tiny_train_stage2.py", opts)
        cfg.strategy = strategy
        path = root / f"{name}.py"
        cfg.dump(str(path))
        return path

    return write


def launch(config: Path, work_dir: Path, nproc: int, nodes: int = 1, extra_env: dict | None = None) -> list[dict]:
    """Run the launch script as ``nodes`` torchrun launches on this host (one per node rank, one rendezvous);
    returns the main rank's log records."""
    port = free_port()
    env = dict(os.environ, PYTHON=sys.executable, NNODES=str(nodes), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), OMP_NUM_THREADS="1", **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    procs = [subprocess.Popen(["bash", str(LAUNCH), str(config), str(nproc), "--work-dir", str(work_dir)],
                              env=dict(env, NODE_RANK=str(rank)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for rank in range(nodes)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]
    return read_log(work_dir / "train_log.jsonl"), outputs[0]


@pytest.fixture(scope="module")
def one_node_ddp(write_config, tmp_path_factory):
    work = tmp_path_factory.mktemp("ddp_1x2")
    return launch(write_config("ddp", dict(type="ddp", find_unused_parameters=True)), work, nproc=2)


def losses(records: list[dict]) -> list[float]:
    return [r["loss"] for r in records]


def test_one_node_two_processes_trains_on_the_global_batch(one_node_ddp):
    records, output = one_node_ddp
    assert [r["iter"] for r in records] == list(range(1, STEPS + 1))
    assert "batch 2 x accumulate 1 x 2 ranks" in output
    assert all(r["loss"] > 0 for r in records) and losses(records)[0] != losses(records)[-1]


def test_two_nodes_of_one_process_match_one_node_of_two(write_config, one_node_ddp, tmp_path):
    records, output = launch(write_config("ddp", dict(type="ddp", find_unused_parameters=True)), tmp_path,
                             nproc=1, nodes=2)
    assert "batch 2 x accumulate 1 x 2 ranks" in output   # the same global batch: 2 samples x 2 ranks
    assert losses(records) == pytest.approx(losses(one_node_ddp[0]), rel=1e-6)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_matches_ddp_on_cpu(write_config, one_node_ddp, tmp_path, stage):
    pytest.importorskip("deepspeed", reason="the 'deepspeed' extra is not installed (make install installs it)")
    records, output = launch(write_config(f"zero{stage}", dict(type="deepspeed", zero_stage=stage)), tmp_path,
                             nproc=2, extra_env=dict(DS_ACCELERATOR="cpu"))
    assert "batch 2 x accumulate 1 x 2 ranks" in output
    assert losses(records) == pytest.approx(losses(one_node_ddp[0]), rel=1e-4)
    grad_norms = [r.get("grad_norm") for r in records]
    assert all(g is not None and g > 0 for g in grad_norms), grad_norms
