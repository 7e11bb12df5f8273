# Tiny MindDrive on embedded-simulator clips, CPU. Stage 3: mixed QA (planning QA ratio 0.8) plus planning.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage3.py
_base_ = [
    "_base_/models/minddrive_tiny.py",
    "_base_/datasets/sim_tiny.py",
    "_base_/schedules/il_tiny.py",
    "_base_/default_runtime.py",
]

stage = 3
data = dict(train=dict(stage=3), val=dict(stage=3))
# A fixed number of steps (not epochs) keeps the CPU run short whatever the number of clips.
# A short QA-mix fine-tune: longer runs at this lr pulled the plan back (L2 at 2 s 3.34 m after 400+100
# steps vs 2.58 m after 500+60).
train_cfg = dict(max_iters=60)
model = dict(loss_weights=dict(lm=3.0))  # as in stage 2
# Stage 3 fine-tunes the stage-2 planner on the QA mix: a lower peak lr keeps it from being knocked back.
optimizer = dict(lr=1e-3)
trainable = ("action_expert", "vision", "query_decoder", "projector", "trajectory_head")
load_from = "work_dirs/minddrive_tiny_train_stage2"
work_dir = "work_dirs/minddrive_tiny_train_stage3"
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=50, max_keep=2)
log_config = dict(interval=5)
