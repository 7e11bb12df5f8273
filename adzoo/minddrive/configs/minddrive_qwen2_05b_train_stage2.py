# MindDrive Qwen2-0.5B imitation learning. Stage 2: planning QA only (waypoint tokens, decoupled speed/path,
# meta-actions, collision loss), from stage 1's weights.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen2_05b_train_stage2.py 8
_base_ = ["./minddrive_qwen2_05b_train_stage1.py"]

stage = 2
data = dict(train=dict(stage=2), val=dict(stage=2))
trainable = ("action_expert", "vision", "query_decoder", "projector", "trajectory_head")
load_from = {{_base_.work_dir}}  # stage 1's newest checkpoint
work_dir = "work_dirs/minddrive_qwen2_05b_train_stage2"
