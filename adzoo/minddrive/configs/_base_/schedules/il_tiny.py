# CPU schedule for the tiny model on simulator clips: the same recipe as il_6e.py (AdamW, layer-wise decay,
# warm-up + cosine, clipping) with a from-scratch-sized lr (5e-3); the stage configs set a few hundred steps
# (30 + 300 + 100), so the three stages run on 2 CPU cores in minutes.

optimizer = dict(
    type="AdamW", lr=5e-3, weight_decay=1e-5, betas=(0.9, 0.999), eps=1e-8,
    paramwise_cfg=dict(layer_decay_rate=0.9, num_layers=24, backbone_prefix="backbone",
                       block_pattern=r"\.blocks\.(\d+)\."),
)
param_scheduler = dict(type="WarmupCosine", warmup_iters=10, warmup_ratio=1.0 / 3, min_lr_ratio=1e-2)
train_cfg = dict(max_epochs=2, batch_size=4, accumulate=1, grad_clip=35.0, precision="bf16", num_workers=0)
test_cfg = dict(batch_size=8)
strategy = dict(type="ddp", find_unused_parameters=True)
# checkpoint_config / log_config belong to _base_/default_runtime.py (mmengine forbids a key in two bases);
# the stage configs set them: iteration checkpoints every 50, log every 5.
