# MindDrive Qwen2.5-3B imitation learning. Stage 3: mixed QA (planning QA ratio 0.8) plus planning, from
# stage 2's weights.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen25_3B_train_stage3.py 8
_base_ = ["./minddrive_qwen25_3B_train_stage2.py"]

stage = 3
data = dict(train=dict(stage=3), val=dict(stage=3))
load_from = {{_base_.work_dir}}  # stage 2's newest checkpoint
work_dir = "work_dirs/minddrive_qwen25_3B_train_stage3"
