# Tiny MindDrive on embedded-simulator clips, CPU. Stage 1: VQA pre-training (scene description, critical
# objects, with history); no planning tokens.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage1.py
_base_ = [
    "./_base_/models/minddrive_tiny.py",
    "./_base_/datasets/sim_tiny.py",
    "./_base_/schedules/il_tiny.py",
    "./_base_/default_runtime.py",
]

# A fixed number of steps (not epochs) keeps the CPU run short whatever the number of clips. Stage 1 only warms
# the LM on scene QA; the budget goes to stage 2 (il_tiny.py).
train_cfg = dict(max_iters=10)
work_dir = "work_dirs/minddrive_tiny_train_stage1"
# Runs of a few hundred steps: checkpoint and log accordingly.
checkpoint_config = dict(interval=50, max_keep=2)
log_config = dict(interval=5)
