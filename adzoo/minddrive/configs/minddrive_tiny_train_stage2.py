# Tiny MindDrive on embedded-simulator clips, CPU. Stage 2: planning QA only (waypoint tokens, decoupled
# speed/path, meta-actions, collision loss), from stage 1's weights.
#   minddrive train adzoo/minddrive/configs/minddrive_tiny_train_stage2.py
_base_ = ["./minddrive_tiny_train_stage1.py"]

stage = 2
data = dict(train=dict(stage=2), val=dict(stage=2))
trainable = ("action_expert", "vision", "query_decoder", "projector", "trajectory_head")
load_from = {{_base_.work_dir}}  # stage 1's newest checkpoint
work_dir = "work_dirs/minddrive_tiny_train_stage2"
# Most of the budget: the planner is what the open-loop L2 measures (il_tiny.py).
train_cfg = dict(max_iters=500)
# The speed decision is one answer token among the LM targets while the planning L1 dominates the clipped
# gradient; a heavier LM term keeps the decision from collapsing onto the majority "slow down".
model = dict(loss_weights=dict(lm=3.0))
