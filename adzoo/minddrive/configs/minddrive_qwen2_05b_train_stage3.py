# MindDrive Qwen2-0.5B imitation learning. Stage 3: mixed QA (planning QA ratio 0.8) plus planning, from
# stage 2's weights.
#   ./adzoo/minddrive/minddrive_dist_train.sh adzoo/minddrive/configs/minddrive_qwen2_05b_train_stage3.py 8
_base_ = ["./minddrive_qwen2_05b_train_stage2.py"]

stage = 3
data = dict(train=dict(stage=3), val=dict(stage=3))
load_from = {{_base_.work_dir}}  # stage 2's newest checkpoint
work_dir = "work_dirs/minddrive_qwen2_05b_train_stage3"
# Regional torch.compile (ViT blocks, LLM and query-decoder layers, trajectory head, losses), each region
# replayed from CUDA graphs, and the fused AdamW: the eager step is bound by launching small kernels
# (benchmarks/RESULTS.md, "Config choices"). The first steps pay the compile; compile=None where
# inductor/triton are unavailable, compile="inductor" for no CUDA graphs.
train_cfg = dict(compile=dict(backend="inductor", mode="reduce-overhead"))
optimizer = dict(fused=True)
# No recomputation: a batch-4 step fits an 80 GB GPU without it, and recomputing would add the ViT and LLM
# forwards to every backward. Turn both back on for GPUs with less memory (the base model has them on).
model = dict(vision=dict(backbone=dict(grad_checkpoint=False)), llm=dict(gradient_checkpointing=False))
