# Closed-loop driving of the real (0.5B / 3B) models on a GPU.
_base_ = ["./closed_loop.py"]

# `minddrive eval`: bf16 with merged adapters, as the GPU rollouts; no compile or CUDA graphs, since world
# batches shrink as routes end and every new size would pay a recompile or a capture.
# --cfg-options eval_driver.device=cpu on a machine without a GPU.
eval_driver = dict(device="cuda", policy=dict(dtype="bfloat16", merge_adapters=True))
# The leaderboard agent drives one route at batch 1, a fixed shape: bf16, regional compile, CUDA graphs and LoRA
# adapters merged into copies of the weights (benchmarks/RESULTS.md, "Config choices"). vit_float8=True runs the
# ViT's matmuls in float8: an approximation, opt-in after validating it.
agent = dict(policy=dict(dtype="bfloat16", compile="inductor", cuda_graphs=True, merge_adapters=True))
