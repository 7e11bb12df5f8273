"""``minddrive ppo`` under ``torchrun --nproc_per_node 2`` (gloo on CPU) on the state-feature policy's rollouts from
the embedded simulator: the default engine (one gradient all-reduce per step) and DeepSpeed ZeRO-2
(``ppo.strategy``) take the same minibatches, micro-batch accumulation included, and end with the same weights
and the same per-epoch losses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minddrive.config import load_config
from minddrive.rollout.policy import load_policy, policy_module, save_policy

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "adzoo/minddrive/configs/minddrive_state_rl_ppo_train.py"
# fp32 on CPU: the two engines differ only in how the gradients are summed (all-reduce vs reduce-scatter of
# flat buckets) and in DeepSpeed's flat fp32 AdamW partition, i.e. in rounding.
TOLERANCE = dict(rel=1e-4, abs=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, nproc: int = 0) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    launcher = [sys.executable]
    if nproc:
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                     f"--master_port={free_port()}"]
    run = subprocess.run([*launcher, "-m", "minddrive.cli", *args], env=env, capture_output=True, text=True,
                         timeout=400)
    assert run.returncode == 0, (run.stdout + run.stderr)[-12000:]
    return run.stdout


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    """An untrained state policy's checkpoint and its decoupled rollouts of 4 embedded-simulator routes."""
    root = tmp_path_factory.mktemp("ppo_ds")
    cfg = load_config(CONFIG)
    torch.manual_seed(0)
    save_policy(load_policy(cfg, None), root / "init", cfg, meta=dict(stage="init"))
    cli("collect", str(CONFIG), "--ckpt", str(root / "init"), "--out", str(root / "roll"), "--workers", "0",
        "--cfg-options", "rl_routes.count=4", "rollout.envs_per_worker=2")
    cli("decouple", str(root / "roll"), "--out", str(root / "dec"), "--config", str(CONFIG))
    return root


def run_ppo(root: Path, name: str, strategy: dict | None) -> tuple[list[dict], dict]:
    """Two processes, 2 epochs of minibatches of 8 steps per process in micro-batches of 3 (8 = 3 + 3 + 2, and a
    shorter last minibatch); the per-epoch log and the trained weights."""
    cfg = load_config(CONFIG)
    cfg.ppo = dict(cfg.ppo, epochs=2, batch_size=8, micro_batch_size=3, learning_rate=1e-2, max_grad_norm=0.5,
                   strategy=strategy)
    path = root / f"{name}.py"
    cfg.dump(str(path))
    cli("ppo", str(path), "--ckpt", str(root / "init"), "--index", str(root / "dec" / "dataset_index.pkl"),
        "--work-dir", str(root / name), nproc=2)
    log = [json.loads(line) for line in (root / name / "ppo_log.jsonl").read_text().splitlines()]
    weights = policy_module(load_policy(cfg, root / name / "ckpt")).state_dict()
    return log, weights


def test_deepspeed_zero2_ppo_update_matches_the_all_reduce_engine(rollouts):
    pytest.importorskip("deepspeed", reason="the 'deepspeed' extra is not installed (make install installs it)")
    from minddrive.rl.decouple import load_index

    steps = len(load_index(rollouts / "dec" / "dataset_index.pkl")["steps"])
    assert steps > 2 * 8, steps   # more than one minibatch per process
    base_log, base = run_ppo(rollouts, "allreduce", None)
    ds_log, ds = run_ppo(rollouts, "zero2", dict(type="deepspeed", zero_stage=2))
    initial = policy_module(load_policy(load_config(CONFIG), rollouts / "init")).state_dict()
    assert any(not torch.equal(base[k], initial[k]) for k in base)   # the update moved the weights
    assert [r["epoch"] for r in ds_log] == [r["epoch"] for r in base_log] == [1, 2]
    for ours, theirs in zip(ds_log, base_log):
        for key in ("loss", "pg_loss", "value_loss", "kl_loss", "approx_kl", "grad_norm"):
            assert ours[key] == pytest.approx(theirs[key], **TOLERANCE), key
        assert ours["grad_norm"] > 0
    assert base_log[0]["loss"] != base_log[1]["loss"]
    assert set(ds) == set(base)
    for key in base:
        torch.testing.assert_close(ds[key], base[key], rtol=1e-4, atol=1e-6, msg=key)


def test_ppo_strategy_is_checked_when_read():
    from minddrive.errors import UserError
    from minddrive.rl.ppo import PPOHyperParams

    assert PPOHyperParams.from_config({}).strategy is None
    assert PPOHyperParams.from_config(dict(strategy=dict(type="deepspeed"))).strategy == dict(type="deepspeed")
    with pytest.raises(UserError, match=r"ppo.strategy = .*'ddp'.*expected None"):
        PPOHyperParams.from_config(dict(strategy=dict(type="ddp")), "x.py")
    with pytest.raises(UserError, match=r"x.py: ppo.strategy.zero_stage=3"):
        PPOHyperParams.from_config(dict(strategy=dict(type="deepspeed", zero_stage=3)), "x.py")
