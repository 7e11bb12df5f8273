# Imitation-learning schedule of the upstream release (docs/upstream.md#imitation-learning): AdamW lr 8e-5,
# weight decay 1e-5, layer-wise lr decay 0.9 over the 24 ViT layers, cosine with 500 linear warm-up
# iterations from 1/3 of the lr down to 1e-3 of it, bf16, grad-norm clip 35, batch 4 per GPU, 6 epochs (upstream: 32 GPUs).

optimizer = dict(
    type="AdamW", lr=8e-5, weight_decay=1e-5, betas=(0.9, 0.999), eps=1e-8,
    # The model's vision backbone is `backbone`; ViT blocks match `.blocks.<i>.` (EVA-02-L has 24).
    paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=24, backbone_prefix="backbone",
                       block_pattern=r"\.blocks\.(\d+)\."),
)
param_scheduler = dict(type="WarmupCosine", warmup_iters=500, warmup_ratio=1.0 / 3, min_lr_ratio=1e-3)
train_cfg = dict(
    max_epochs=6,
    batch_size=4,        # per GPU
    accumulate=1,        # gradient accumulation micro-batches per optimiser step
    grad_clip=35.0,
    precision="bf16",    # autocast on CUDA; CPU runs stay fp32
    # The frozen LLM's decoder-layer weights stored in bf16: what autocast computes with anyway, without
    # re-casting them every step (CUDA only; DeepSpeed's bf16 mode casts the whole model itself).
    frozen_llm_dtype="bf16",
    num_workers=4,
)
test_cfg = dict(batch_size=4)
# Stage 1 leaves the planning head idle and the aux heads may be off: DDP must tolerate unused parameters.
strategy = dict(type="ddp", find_unused_parameters=True)
# Stage 1 trains the vision side and the action expert's LoRA on VQA; stage 2 adds the trajectory head.
trainable = ("action_expert", "vision", "query_decoder", "projector")
