# MindDrive Qwen2.5-3B imitation learning. Stage 1: VQA pre-training (scene description, critical objects, with
# history); no planning tokens. The 0.5B recipe with the 3B model, its tokenizer and ZeRO-2.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen25_3B_train_stage1.py 8
_base_ = [
    "./_base_/models/minddrive_qwen25_3b.py",
    "./_base_/datasets/b2d.py",
    "./_base_/schedules/il_6e.py",
    "./_base_/default_runtime.py",
]

tokenizer = "ckpts/Qwen2.5-3B"
data = dict(train=dict(tokenizer=tokenizer), val=dict(tokenizer=tokenizer))
# ZeRO-2 shards optimiser state and gradients (deepspeed is imported only for this strategy).
strategy = dict(_delete_=True, type="deepspeed", zero_stage=2)
work_dir = "work_dirs/minddrive_qwen25_3B_train_stage1"
