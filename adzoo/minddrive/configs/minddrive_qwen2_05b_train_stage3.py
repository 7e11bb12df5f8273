# MindDrive Qwen2-0.5B imitation learning. Stage 3: mixed QA (planning QA ratio 0.8) plus planning.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen2_05b_train_stage3.py 8
_base_ = [
    "_base_/models/minddrive_qwen2_05b.py",
    "_base_/datasets/b2d.py",
    "_base_/schedules/il_6e.py",
    "_base_/default_runtime.py",
]

stage = 3
data = dict(train=dict(stage=3), val=dict(stage=3))
# Only the action expert's LoRA trains in the LLM; the rest are the non-LLM parts of this stage.
trainable = ("action_expert", "vision", "query_decoder", "projector", "trajectory_head")
# The previous stage's work dir (its newest checkpoint) or a checkpoint directory.
load_from = "work_dirs/minddrive_qwen2_05b_train_stage2"
work_dir = "work_dirs/minddrive_qwen2_05b_train_stage3"
# Crash safety: an atomic checkpoint every `interval` iterations, the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=2000, max_keep=3)
log_config = dict(interval=50)
# Regional torch.compile (ViT blocks, LLM and query-decoder layers, trajectory head, losses:
# MindDrive.compile_regions), each region replayed from CUDA graphs, and the fused AdamW: a batch-4 step ran
# 2.1-2.5x faster than eager on one H100 (15.1 samples/s, MFU 41-42 %) and scaled to two under DDP at 0.93
# efficiency (benchmarks/RESULTS.md, runs 7-8). The first steps pay the compile (~45-100 s); set compile=None
# where inductor/triton are unavailable, or compile="inductor" for no CUDA graphs.
train_cfg = dict(compile=dict(backend="inductor", mode="reduce-overhead"))
optimizer = dict(fused=True)
# No recomputation: a batch-4 step fits an 80 GB GPU without it (45 GiB peak graphed, 56 GiB eager; run 8),
# and recomputing would add the ViT and LLM forwards (~85 of the ~273 ms step) to every backward. Turn both
# back on for GPUs with less memory (the base model config has them on).
model = dict(vision=dict(backbone=dict(grad_checkpoint=False)), llm=dict(gradient_checkpointing=False))
