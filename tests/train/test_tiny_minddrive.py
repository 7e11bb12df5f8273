"""The trainer and ``minddrive test`` on the real tiny MindDrive model and the data engineer's fixture clips."""

import json
from pathlib import Path

import pytest

from minddrive.config import load_config

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "b2d_clip"


@pytest.fixture(scope="module")
def fixture_index(tmp_path_factory):
    from minddrive.data.infos import build_info_index

    if not (FIXTURE / "split.json").is_file():
        pytest.fail(f"{FIXTURE}: fixture clips missing (python tests/fixtures/make_b2d_clip.py)")
    out = tmp_path_factory.mktemp("infos")
    build_info_index(FIXTURE, FIXTURE / "split.json", out, vqa_root=str(FIXTURE / "vqa"), workers=0,
                     progress=False, log=lambda *_: None)
    return out


def _tiny_cfg(index: Path, work_dir: Path, stage: int = 2, **extra):
    opts = {f"data.{split}.{key}": value for split in ("train", "val") for key, value in (
        ("ann_file", str(index / f"b2d_infos_{split}.pkl")), ("data_root", str(FIXTURE)),
        ("vqa_root", str(FIXTURE / "vqa")))}
    opts.update({"train_cfg.max_iters": 2, "train_cfg.batch_size": 2, "log_config.interval": 1,
                 "log_config.progress_bar": False, "load_from": None, "work_dir": str(work_dir), **extra})
    return load_config(REPO / f"adzoo/minddrive/configs/minddrive_tiny_train_stage{stage}.py", opts)


@pytest.mark.slow
def test_tiny_stage2_trains_and_evaluates_open_loop(fixture_index, tmp_path, capsys):
    from minddrive.cli import main
    from minddrive.models.checkpoint import build_model_from_checkpoint
    from minddrive.train import evaluate_open_loop, train
    from minddrive.train.logging import read_log

    cfg = _tiny_cfg(fixture_index, tmp_path)
    final = train(cfg, tmp_path)
    records = read_log(tmp_path / "train_log.jsonl")
    assert [r["iter"] for r in records] == [1, 2]
    assert all(r["loss_planning"] > 0 and r["loss_lm"] > 0 for r in records)
    # Only the action expert moved among the LoRA sets; the checkpoint loads through the model package.
    model, _, meta = build_model_from_checkpoint(final)
    assert meta["step"] == 2 and meta["stage"] == 2 and meta["converted"] is False

    metrics = evaluate_open_loop(cfg, final)
    assert metrics["num_samples"] == 6 and metrics["decision_source"] == "action_expert"
    assert set(metrics["model"]) == set(metrics["constant_velocity"]) == set(metrics["model_with_labelled_decision"])
    assert set(metrics["model"]) >= {"l2_1s", "l2_2s", "l2_3s", "l2_avg", "collision_1s", "collision_2s", "collision_3s"}
    assert metrics["meta_action"]["labelled"] >= 1
    assert 0.0 <= metrics["model"]["collision_3s"] <= 1.0

    cfg.dump(str(tmp_path / "cfg.py"))
    assert main(["test", str(tmp_path / "cfg.py"), str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["model"] == metrics["model"] and printed["constant_velocity"] == metrics["constant_velocity"]
    assert main(["test", str(tmp_path / "cfg.py"), str(final)]) == 0
    table = capsys.readouterr().out
    assert "const-vel" in table and "l2_2s" in table and "speed meta-action accuracy" in table


def test_tiny_stage3_trains_with_compiled_regions_as_eager(fixture_index, tmp_path):
    """``train_cfg.compile`` compiles the LLM and query-decoder layers in place (aot_eager here: inductor's
    tracing without a C++ build) and the steps match an eager run's losses."""
    import torch

    from minddrive.train import train
    from minddrive.train.logging import read_log

    losses = {}
    for backend in (None, "aot_eager"):
        work = tmp_path / str(backend)
        train(_tiny_cfg(fixture_index, work, stage=3, **{"train_cfg.compile": backend}), work)
        losses[backend] = [r["loss"] for r in read_log(work / "train_log.jsonl")]
    assert len(losses[None]) == 2
    assert torch.allclose(torch.tensor(losses["aot_eager"]), torch.tensor(losses[None]), rtol=1e-4, atol=1e-5)


def test_all_stage_configs_carry_the_upstream_recipe():
    for size in ("qwen2_05b", "qwen25_3B"):
        for stage in (1, 2, 3):
            cfg = load_config(REPO / f"adzoo/minddrive/configs/minddrive_{size}_train_stage{stage}.py")
            assert cfg.stage == stage and cfg.data.train.stage == stage
            assert cfg.optimizer.lr == 8e-5 and cfg.optimizer.weight_decay == 1e-5
            assert cfg.optimizer.paramwise_cfg.layer_decay_rate == 0.9 and cfg.optimizer.paramwise_cfg.num_layers == 24
            assert cfg.param_scheduler.warmup_iters == 500 and cfg.param_scheduler.warmup_ratio == pytest.approx(1 / 3)
            assert cfg.param_scheduler.min_lr_ratio == 1e-3
            assert cfg.train_cfg.grad_clip == 35 and cfg.train_cfg.batch_size == 4 and cfg.train_cfg.max_epochs == 6
            assert cfg.train_cfg.precision == "bf16"
            assert "action_expert" in cfg.trainable and "decision_expert" not in cfg.trainable
            assert (cfg.load_from is None) == (stage == 1)
            if stage > 1:
                assert cfg.load_from.endswith(f"minddrive_{size}_train_stage{stage - 1}")
            assert cfg.strategy.type == ("deepspeed" if size == "qwen25_3B" else "ddp")
    stage3 = load_config(REPO / "adzoo/minddrive/configs/minddrive_qwen2_05b_train_stage3.py")
    assert stage3.data.train.planning_qa_ratio == 0.8
