# Tiny MindDrive on embedded-simulator clips, CPU. Stage 2: planning QA only (waypoint tokens, decoupled speed/path, meta-actions, collision loss).
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage2.py
_base_ = [
    "_base_/models/minddrive_tiny.py",
    "_base_/datasets/sim_tiny.py",
    "_base_/schedules/il_tiny.py",
    "_base_/default_runtime.py",
]

stage = 2
data = dict(train=dict(stage=2), val=dict(stage=2))
# A fixed number of steps (not epochs) keeps the CPU run short whatever the number of clips.
# Stage 2 gets most of the budget: the planner is what the open-loop L2 measures (il_tiny.py).
train_cfg = dict(max_iters=500)
# The speed decision is one answer token among the LM targets while the planning L1 dominates the clipped
# gradient; a heavier LM term keeps the decision from collapsing onto the majority "slow down".
model = dict(loss_weights=dict(lm=3.0))
trainable = ("action_expert", "vision", "query_decoder", "projector", "trajectory_head")
load_from = "work_dirs/minddrive_tiny_train_stage1"
work_dir = "work_dirs/minddrive_tiny_train_stage2"
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=50, max_keep=2)
log_config = dict(interval=5)
