"""CPU smoke runs of the GPU benchmarks (benchmarks/gpu_bench.py, benchmarks/multi_gpu_bench.py) at tiny shapes.

The three runs (single-process benchmark, 1-process and 2-process torchrun) start together in one fixture,
so the module costs one model build's wall time rather than three.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
pytestmark = pytest.mark.slow


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
                PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def _torchrun(nproc: int, port: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}",
            str(BENCH / "multi_gpu_bench.py"), "--sizes", "tiny", "--micro-batches", "2", "--il-batch", "1",
            "--steps", "2", "--warmup", "1", "--out", str(out)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    port = 29400 + os.getpid() % 500
    commands = {
        "single": [sys.executable, str(BENCH / "gpu_bench.py"), "--size", "tiny", "--device", "cpu", "--steps", "2",
                   "--out", str(out / "single")],
        "w1": _torchrun(1, port, out / "multi"),
        "w2": _torchrun(2, port + 1, out / "multi"),
    }
    procs = {k: subprocess.Popen(c, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, c in commands.items()}
    logs = {}
    for key, proc in procs.items():
        logs[key] = proc.communicate(timeout=240)[0]
        assert proc.returncode == 0, f"{key} failed:\n{logs[key][-3000:]}"
    compare = subprocess.run([sys.executable, str(BENCH / "multi_gpu_bench.py"), "--compare",
                              str(out / "multi" / "multi_gpu_w1.json"), str(out / "multi" / "multi_gpu_w2.json"),
                              "--out", str(out / "multi")], cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=60)
    assert compare.returncode == 0, compare.stderr[-2000:]
    return out, logs


def test_gpu_bench_tiny_reports_every_figure(runs):
    out, logs = runs
    r = json.loads((out / "single" / "gpu_bench.json").read_text())["tiny"]
    assert not [k for k, v in r.items() if isinstance(v, dict) and "error" in v], r
    assert r["ceiling"]["flops_per_s"] > 0 and r["ceiling"]["device"] == "cpu"
    il = r["il_step"]
    assert il["batch"] == 2 and il["grad_checkpointing"] is False
    assert il["samples_per_s"] > 0 and il["flop_per_step"] > 1e8
    # MFU is achieved FLOP/s over the measured ceiling: it must be consistent with the two numbers it comes from.
    assert il["mfu_vs_ceiling"] == pytest.approx(il["flop_per_step"] / (il["step_ms"] / 1e3)
                                                 / r["ceiling"]["flops_per_s"], rel=0.05)
    ro = r["rollout"]
    assert ro["act_b1_ms"] > 0 and set(ro["act_decisions_per_s"]) == {"1", "4"}
    assert set(ro["generate2_decisions_per_s"]) == {"1", "4"}
    assert ro["speedup_vs_generate2_b4"] == pytest.approx(
        ro["act_decisions_per_s"]["4"] / ro["generate2_decisions_per_s"]["4"], rel=0.02)
    ppo = r["ppo"]
    assert ppo["compute_samples_per_s"] > 0 and ppo["end_to_end_samples_per_s"] > 0
    assert ppo["loss"] == ppo["loss"]  # not NaN
    assert "IL step" in logs["single"] and "PPO update" in logs["single"]


def test_multi_gpu_bench_two_processes_match_one(runs):
    out, _ = runs
    w1 = json.loads((out / "multi" / "multi_gpu_w1.json").read_text())
    w2 = json.loads((out / "multi" / "multi_gpu_w2.json").read_text())
    assert (w1["world_size"], w2["world_size"]) == (1, 2) and w2["backend"] == "gloo"
    one, two = w1["sizes"]["tiny"]["il_step"], w2["sizes"]["tiny"]["il_step"]
    assert (one["accumulate_per_rank"], two["accumulate_per_rank"]) == (2, 1)
    assert one["global_batch"] == two["global_batch"] == 2
    assert len(one["losses"]) == len(two["losses"]) == 3  # warm-up + 2 timed steps
    # Same global batch, same per-micro-batch seeds: DDP over 2 ranks equals 2-step accumulation.
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert one["losses"][-1] < one["losses"][0]  # the steps really update the weights
    assert w2["sizes"]["tiny"]["ppo"]["samples_per_s"] > 0

    report = json.loads((out / "multi" / "multi_gpu.json").read_text())
    row = report["sizes"]["tiny"]["il_step"]
    assert row["losses_match"] is True and row["loss_changed"] is True
    assert row["scaling_efficiency"] == pytest.approx(two["samples_per_s"] / (2 * one["samples_per_s"]), rel=0.01)
    assert "scaling_efficiency" in report["sizes"]["tiny"]["ppo"]


def test_compare_flags_mismatched_losses(tmp_path):
    sys.path.insert(0, str(BENCH))
    import multi_gpu_bench

    il = dict(samples_per_s=10.0, peak_mem_gib_max_rank=1.0, batch_per_micro=1, grad_checkpointing=False,
              global_batch=2, losses=[2.0, 1.5, 1.2])
    one = dict(world_size=1, device="cpu", sizes=dict(tiny=dict(il_step=il)))
    many = dict(world_size=2, device="cpu", device_name="cpu",
                sizes=dict(tiny=dict(il_step=dict(il, samples_per_s=15.0, losses=[2.0, 1.6, 1.3]))))
    row = multi_gpu_bench.compare(one, many)["sizes"]["tiny"]["il_step"]
    assert row["scaling_efficiency"] == pytest.approx(0.75)
    assert row["losses_match"] is False and row["max_rel_loss_diff"] == pytest.approx(0.1 / 1.2)
