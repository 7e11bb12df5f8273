# CPU schedule for the tiny model on simulator clips: the recipe of il_6e.py (AdamW, layer-wise decay, warm-up
# + cosine, clipping) with a from-scratch-sized lr. The stage configs run 10 + 500 + 60 steps with LM loss
# weight 3: the budget with the lowest open-loop L2 of those tried (benchmarks/RESULTS.md, "Tiny IL budget");
# most of the gain is stage-2 steps (the planner), stage 1 and a long stage 3 buy little on a model this size.
_base_ = ["./il_6e.py"]

optimizer = dict(lr=5e-3)
param_scheduler = dict(warmup_iters=10, min_lr_ratio=1e-2)
# CPU: no frozen-weight dtype change, no loader processes.
train_cfg = dict(_delete_=True, max_epochs=2, batch_size=4, accumulate=1, grad_clip=35.0, precision="bf16",
                 num_workers=0)
test_cfg = dict(batch_size=8)
