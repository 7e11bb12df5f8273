"""The training loop on the toy model: learning, logs, checkpoints, crash-safe resume, 2-process DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minddrive.errors import UserError
from minddrive.train import train
from minddrive.train.logging import read_log
from train_toy_fixtures import toy_config

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{HERE}{os.pathsep}{REPO}")
    env.pop("TOY_DUMP_DIR", None)
    return env


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def test_training_learns_logs_and_keeps_last_checkpoints(tmp_path):
    cfg = toy_config(tmp_path)
    final = train(cfg, tmp_path)
    # 64 samples / batch 4 / accumulate 2 = 8 steps per epoch, 3 epochs.
    assert final == tmp_path / "checkpoints" / "iter_00000024"
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["iter_00000020", "iter_00000024"]  # every 4 iterations, keep 2
    assert (tmp_path / "latest").resolve() == final.resolve()
    meta = json.loads((final / "meta.json").read_text())
    assert meta["step"] == 24 and meta["stage"] == 2
    weights = _weights(final)
    assert "action_expert.1.weight" in weights and "frozen_llm.weight" not in weights

    records = read_log(tmp_path / "train_log.jsonl")
    assert [r["iter"] for r in records] == list(range(2, 25, 2))
    assert records[-1]["loss_plan"] < 0.25 * records[0]["loss_plan"]
    assert records[-1]["lr"] == pytest.approx(3e-2 * 1e-3)  # cosine reached its floor
    assert records[0]["samples_per_s"] > 0 and records[0]["peak_mem_mb"] > 0
    assert (tmp_path / "loss_curves.png").stat().st_size > 5000
    assert any((tmp_path / "tensorboard").iterdir())


def test_load_from_starts_from_previous_stage(tmp_path):
    first = train(toy_config(tmp_path / "s1", train_cfg=dict(max_iters=2, batch_size=4)), tmp_path / "s1")
    cfg = toy_config(tmp_path / "s2", load_from=str(tmp_path / "s1"), train_cfg=dict(max_iters=1, batch_size=4),
                     optimizer=dict(type="AdamW", lr=1e-12))
    second = train(cfg, tmp_path / "s2")
    a, b = _weights(first), _weights(second)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_compile_for_a_model_without_compile_regions_is_a_user_error(tmp_path):
    cfg = toy_config(tmp_path, train_cfg=dict(max_iters=1, batch_size=4, compile="aot_eager"))
    with pytest.raises(UserError, match=r"train_cfg.compile: ToyDriver has no compile regions \(only MindDrive has\)"):
        train(cfg, tmp_path)


def test_compile_setting_is_a_backend_or_a_dict_of_compile_regions_arguments(tmp_path):
    from minddrive.models.acceleration import regional_compile_options

    assert regional_compile_options(None) == {} and regional_compile_options("inductor") == dict(backend="inductor")
    assert regional_compile_options(dict(llm_mode="reduce-overhead")) == dict(
        backend="inductor", mode=None, llm_mode="reduce-overhead")
    with pytest.raises(UserError, match=r"train_cfg.compile: unknown keys \['llm'\]; expected backend, mode, llm_mode"):
        regional_compile_options(dict(backend="inductor", llm="reduce-overhead"))
    with pytest.raises(UserError, match="train_cfg.compile: expected None, a backend name or a dict, got 3"):
        train(toy_config(tmp_path, train_cfg=dict(max_iters=1, batch_size=4, compile=3)), tmp_path)


def test_frozen_llm_dtype_is_checked_and_applied_only_under_cuda_bf16_autocast(tmp_path, capsys, monkeypatch):
    from minddrive.models import acceleration
    from minddrive.models.acceleration import store_frozen_llm
    from minddrive.models.minddrive import MindDrive

    class Stored(MindDrive):  # a MindDrive without weights: what store_frozen_llm decides, not the storing itself
        calls: list = []

        def __init__(self):
            torch.nn.Module.__init__(self)

    def record(model, dtype):
        model.calls.append(dtype)
        return 3 * 2**29

    monkeypatch.setattr(acceleration, "store_frozen_llm_linears", record)
    model, cuda, cpu = Stored(), torch.device("cuda", 0), torch.device("cpu")
    assert store_frozen_llm(model, {}, cuda, None) is None and store_frozen_llm(model, dict(frozen_llm_dtype="fp32"),
                                                                              cuda, None) is None
    bf16 = dict(frozen_llm_dtype="bf16")
    assert "no bf16 autocast on cpu" in store_frozen_llm(model, bf16, cpu, None)
    assert "DeepSpeed" in store_frozen_llm(model, bf16, cuda, dict(type="deepspeed", zero_stage=2))
    assert model.calls == []
    assert store_frozen_llm(model, bf16, cuda, dict(type="fsdp", shard_frozen=False)).endswith("(1.50 GiB freed)")
    assert model.calls == [torch.bfloat16]
    with pytest.raises(UserError, match="expected None, 'fp32' or 'bf16', got 'fp16'"):
        store_frozen_llm(model, dict(frozen_llm_dtype="fp16"), cuda, None)
    with pytest.raises(UserError, match="needs precision='bf16'"):
        store_frozen_llm(model, dict(bf16, precision="fp32"), cuda, None)
    with pytest.raises(UserError, match="strategy.shard_frozen=False"):
        store_frozen_llm(model, bf16, cuda, dict(type="fsdp"))
    with pytest.raises(UserError, match=r"train_cfg.frozen_llm_dtype: Module has no frozen LLM \(only MindDrive has\)"):
        store_frozen_llm(torch.nn.Module(), bf16, cuda, None)
    # On the CPU the setting is reported and the toy run trains as before.
    train(toy_config(tmp_path, train_cfg=dict(max_iters=1, batch_size=4, frozen_llm_dtype="bf16")), tmp_path)
    assert "frozen_llm_dtype='bf16' not applied: no bf16 autocast on cpu" in capsys.readouterr().out


def test_missing_load_from_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="load_from"):
        train(toy_config(tmp_path, load_from=str(tmp_path / "nope")), tmp_path)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run_bit_exactly(tmp_path):
    reference = train(toy_config(tmp_path / "ref"), tmp_path / "ref")

    # The same run in a subprocess, slowed down so it can be killed between checkpoints.
    work = tmp_path / "crash"
    cfg_path = tmp_path / "crash.py"
    toy_config(work, model=dict(type="ToyDriver", dim=8, depth=4, step_sleep_s=0.05)).dump(str(cfg_path))
    proc = subprocess.Popen([sys.executable, "-m", "minddrive.cli", "train", str(cfg_path), "--work-dir", str(work)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (work / "checkpoints" / "iter_00000008").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ckpts = sorted(p.name for p in (work / "checkpoints").iterdir() if p.name.startswith("iter_"))
    assert ckpts and ckpts[-1] < "iter_00000024", "the run finished before it was killed"

    resumed = train(toy_config(work), work, resume=True)
    ref, got = _weights(reference), _weights(resumed)
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    # The resumed run also restored the optimiser: its last logged loss equals the reference one.
    assert read_log(work / "train_log.jsonl")[-1]["loss_plan"] == read_log(tmp_path / "ref" / "train_log.jsonl")[-1]["loss_plan"]


@pytest.mark.slow
def test_two_process_ddp_ranks_end_identical(tmp_path):
    cfg_path = tmp_path / "ddp.py"
    toy_config(tmp_path / "work", train_cfg=dict(max_epochs=1, batch_size=4, accumulate=1)).dump(str(cfg_path))
    dump = tmp_path / "dump"
    dump.mkdir()
    env = dict(_env(), TOY_DUMP_DIR=str(dump), MASTER_PORT=str(29500 + os.getpid() % 1000), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(REPO / "adzoo/minddrive/minddrive_dist_train.sh"), str(cfg_path), "2"],
                            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")
    assert r0.keys() == r1.keys() and len(r0) > 0
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    # 64 samples / (4 per rank x 2 ranks) = 8 steps, and the weights moved away from the init.
    final = tmp_path / "work" / "checkpoints" / "iter_00000008"
    assert torch.equal(_weights(final)["action_expert.1.weight"], r0["action_expert.1.weight"])


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    from minddrive.cli import main

    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(type='NoSuchModel')\ndata = dict(train=dict(type='X'))\n")
    assert main(["train", str(bad), "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.type: unknown model type 'NoSuchModel'" in err
    assert main(["train", str(tmp_path / "missing.py")]) == 2
    assert "missing.py: config file not found" in capsys.readouterr().err


def test_log_window_means_the_device_terms_and_reads_them_once_per_line(monkeypatch):
    from minddrive.train.trainer import LogWindow

    window = LogWindow()
    reads = []
    original = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: reads.append(self.shape) or original(self))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("a per-step read"))
    for step, (planning, lm) in enumerate([(1.0, 4.0), (3.0, 2.0), (2.0, 0.0)]):
        losses = {"loss_planning": torch.tensor(planning), "loss_lm": torch.tensor(lm),
                  "not_a_scalar": torch.ones(3)}
        window.add(losses, torch.tensor(planning + lm), n=4)
        window.grad_norm = torch.tensor(0.5 + step)
        losses["loss_planning"].fill_(100.0)  # reused memory (a CUDA-graph output) must not reach the sums
    assert reads == []  # nothing read from the device while steps run
    means = window.means()
    assert reads == [torch.Size([3])]  # one read for all three terms
    assert means == pytest.approx({"loss_planning": 2.0, "loss_lm": 2.0, "loss": 4.0, "grad_norm": 2.5})
    assert window.samples == 12 and window.count == 3
