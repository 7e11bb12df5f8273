# Tiny MindDrive on embedded-simulator clips, CPU. Stage 1: VQA pre-training (scene description, critical objects, with history); no planning tokens.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage1.py
_base_ = [
    "_base_/models/minddrive_tiny.py",
    "_base_/datasets/sim_tiny.py",
    "_base_/schedules/il_tiny.py",
    "_base_/default_runtime.py",
]

stage = 1
data = dict(train=dict(stage=1), val=dict(stage=1))
# A fixed number of steps (not epochs) keeps the CPU run short whatever the number of clips.
# Stage 1 only warms the LM on scene QA; its steps buy little open-loop accuracy on the tiny model, so the
# budget goes to stage 2 (tuned on 32 simulator routes: 10/500/60 steps, see il_tiny.py).
train_cfg = dict(max_iters=10)
trainable = ("action_expert", "vision", "query_decoder", "projector")
load_from = None
work_dir = "work_dirs/minddrive_tiny_train_stage1"
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=50, max_keep=2)
log_config = dict(interval=5)
