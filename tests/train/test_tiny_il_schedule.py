"""The tiny imitation-learning schedule (issue #6): the step budget, pipelines and loss weights the three
tiny stage configs were tuned with. The timing and L2 themselves need the 32-route data set (see il_tiny.py);
these tests pin the settings that produced them, so a drifting config fails here rather than in the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from minddrive.config import load_config
from minddrive.registry import MODELS, build

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "adzoo/minddrive/configs"


def _stage(stage: int):
    return load_config(CONFIGS / f"minddrive_tiny_train_stage{stage}.py")


def test_step_budget_goes_to_the_planning_stage():
    iters = [_stage(s).train_cfg.max_iters for s in (1, 2, 3)]
    assert iters == [10, 500, 60]
    # ~0.3 s a step at batch 4 on one CPU thread: 570 steps keep the three stages near 4 minutes.
    assert sum(iters) <= 600
    assert all(_stage(s).train_cfg.batch_size == 4 for s in (1, 2, 3))


def test_stage_lrs_and_chain():
    s1, s2, s3 = (_stage(s) for s in (1, 2, 3))
    assert s1.optimizer.lr == s2.optimizer.lr == 5e-3
    assert s3.optimizer.lr == 1e-3  # the fine-tune must not knock the stage-2 planner back
    assert s1.load_from is None
    assert s2.load_from.endswith("minddrive_tiny_train_stage1") and s3.load_from.endswith("minddrive_tiny_train_stage2")
    assert [c.data.train.stage for c in (s1, s2, s3)] == [1, 2, 3]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_tiny_train_pipeline_has_no_photometric_distortion(stage):
    cfg = _stage(stage)
    train = [step["type"] for step in cfg.data.train.pipeline]
    assert "PhotoMetricDistortion" not in train
    assert train == [step["type"] for step in cfg.data.val.pipeline]
    assert cfg.data.train.pipeline[1]["size"] == (224, 128)


def test_planning_stages_weight_the_lm_term_up_and_the_model_uses_it():
    assert _stage(1).model.loss_weights.lm == 1.0
    assert _stage(3).model.loss_weights.lm == 3.0
    model = build(_stage(2).model, MODELS, where="model")
    # The override merges into the base weights rather than replacing them.
    assert model.loss_weights["lm"] == 3.0
    assert model.loss_weights["planning"] == 3.0 and model.loss_weights["kl"] == 3.0
