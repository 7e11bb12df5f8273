"""``minddrive_dist_train.sh`` on the tiny IL stage, gloo on CPU: one node with 2 processes, two "nodes" of one
process each on this host (NNODES=2, a shared rendezvous on 127.0.0.1), and DeepSpeed ZeRO-2 on 2 processes.
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
        assert proc.returncode == 0, output[-12000:]
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


def test_deepspeed_zero2_matches_ddp_on_cpu(write_config, one_node_ddp, tmp_path):
    """DeepSpeed picks its CPU accelerator by itself where no GPU is (gloo between the processes)."""
    pytest.importorskip("deepspeed", reason="the 'deepspeed' extra is not installed (make install installs it)")
    records, output = launch(write_config("zero2", dict(type="deepspeed", zero_stage=2)), tmp_path, nproc=2)
    assert "batch 2 x accumulate 1 x 2 ranks" in output
    assert losses(records) == pytest.approx(losses(one_node_ddp[0]), rel=1e-4)
    grad_norms = [r.get("grad_norm") for r in records]
    assert all(g is not None and g > 0 for g in grad_norms), grad_norms
    assert (tmp_path / "checkpoints" / f"iter_{STEPS:08d}").is_dir()


def test_deepspeed_strategy_errors_are_one_line():
    from minddrive.errors import UserError
    from minddrive.train.distributed import deepspeed_stage

    assert deepspeed_stage(dict(type="deepspeed")) == 2
    with pytest.raises(UserError, match="zero_stage=3.*fsdp"):
        deepspeed_stage(dict(type="deepspeed", zero_stage=3))
    with pytest.raises(UserError, match=r"unknown keys \['find_unused_parameters'\]"):
        deepspeed_stage(dict(type="deepspeed", find_unused_parameters=True))


def test_bench_compares_the_wrappers_at_world_size_one(tmp_path):
    """benchmarks/multi_gpu_bench.py --wrap-single (the GPU command's CPU path): DDP, FSDP as ZeRO-2 and full
    sharding, and DeepSpeed ZeRO-2 around one process, same data and seeds, side by side."""
    pytest.importorskip("deepspeed", reason="the 'deepspeed' extra is not installed (make install installs it)")
    import json

    names = ["ddp", "fsdp_zero2", "fsdp_full", "deepspeed_zero2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
                          f"--master_port={free_port()}", str(REPO / "benchmarks" / "multi_gpu_bench.py"),
                          "--sizes", "tiny", "--micro-batches", "2", "--il-batch", "1", "--steps", "2", "--warmup", "1",
                          "--strategy", ",".join(names), "--wrap-single", "--skip-ppo", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-6000:]
    tiny = json.loads((tmp_path / "multi_gpu_w1.json").read_text())["sizes"]["tiny"]
    rows = tiny["strategies_at_world_size_1"]
    assert list(rows) == names
    assert tiny["il_step_deepspeed_zero2"]["strategy"] == dict(type="deepspeed", zero_stage=2)
    assert tiny["il_step_fsdp_full"]["strategy"]["sharding_strategy"] == "FULL_SHARD"
    for name in names:   # fp32 on CPU: every wrapper takes the same steps
        assert rows[name]["max_rel_loss_diff_vs_first"] <= 1e-5 and rows[name]["step_ms_median"] > 0
    assert len(rows["ddp"]["losses"]) == 3 and rows["ddp"]["losses"][0] != rows["ddp"]["losses"][-1]
