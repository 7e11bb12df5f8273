# MindDrive Qwen2-0.5B imitation learning. Stage 1: VQA pre-training (scene description, critical objects, with
# history); no planning tokens. Only the action expert's LoRA trains in the LLM (il_6e.py: `trainable`).
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen2_05b_train_stage1.py 8
_base_ = [
    "./_base_/models/minddrive_qwen2_05b.py",
    "./_base_/datasets/b2d.py",
    "./_base_/schedules/il_6e.py",
    "./_base_/default_runtime.py",
]

work_dir = "work_dirs/minddrive_qwen2_05b_train_stage1"
