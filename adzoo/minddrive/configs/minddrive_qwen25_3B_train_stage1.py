# MindDrive Qwen2.5-3B imitation learning. Stage 1: VQA pre-training (scene description, critical objects, with history); no planning tokens.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen25_3B_train_stage1.py 8
_base_ = [
    "_base_/models/minddrive_qwen25_3b.py",
    "_base_/datasets/b2d.py",
    "_base_/schedules/il_6e.py",
    "_base_/default_runtime.py",
]

stage = 1
tokenizer = "ckpts/Qwen2.5-3B"
data = dict(train=dict(stage=1, tokenizer=tokenizer), val=dict(stage=1, tokenizer=tokenizer))
trainable = ("action_expert", "vision", "query_decoder", "projector")
load_from = None
work_dir = "work_dirs/minddrive_qwen25_3B_train_stage1"
# ZeRO-2 shards optimiser state and gradients (deepspeed is imported only for this strategy).
strategy = dict(_delete_=True, type="deepspeed", zero_stage=2)
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=2000, max_keep=3)
log_config = dict(interval=50)
