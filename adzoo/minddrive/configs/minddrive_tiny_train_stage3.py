# Tiny MindDrive on embedded-simulator clips, CPU. Stage 3: mixed QA (planning QA ratio 0.8) plus planning,
# from stage 2's weights.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage3.py
_base_ = ["./minddrive_tiny_train_stage2.py"]

stage = 3
data = dict(train=dict(stage=3), val=dict(stage=3))
load_from = {{_base_.work_dir}}  # stage 2's newest checkpoint
work_dir = "work_dirs/minddrive_tiny_train_stage3"
# A short QA-mix fine-tune of the stage-2 planner at a lower peak lr: longer runs, or the stage-2 lr, pulled
# the plan back (il_tiny.py).
train_cfg = dict(max_iters=60)
optimizer = dict(lr=1e-3)
