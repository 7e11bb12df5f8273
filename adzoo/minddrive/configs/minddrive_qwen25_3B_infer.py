# Closed-loop inference with the qwen25_3B MindDrive (DESIGN.md §2): the real model config, weights from
# ckpts/Qwen2.5-3B and the checkpoint given with --ckpt (never a hub).
#   minddrive eval adzoo/minddrive/configs/minddrive_qwen25_3B_infer.py --ckpt <ckpt> --suite sim-b2d-mini
_base_ = ["./_base_/models/minddrive_qwen25_3b.py", "./_base_/default_runtime.py"]

# The embedded simulator renders the six cameras at the model's input size.
env = dict(type="EmbeddedDriveEnv", render=True, image_size={{_base_.image_size}})
# `minddrive eval` runs the model on the GPU, bf16 with merged adapters (as the GPU rollouts: world batches vary
# in size as routes end, so no compile or graphs); --cfg-options eval_driver.device=cpu on a machine without one.
eval_driver = dict(decision_interval=5, device="cuda", policy=dict(dtype="bfloat16", merge_adapters=True))
# Bench2Drive leaderboard agent (team_code/minddrive_b2d_agent.py): CARLA ticks at 20 Hz, decide at 2 Hz.
# The GPU inference path of benchmarks/RESULTS.md (#10): bf16, regional compile, CUDA graphs, LoRA adapters
# merged into copies of the weights (0.5B act at batch 1: 28.3-28.6 ms on an H100, run 6). vit_float8=True
# runs the ViT's matmuls in float8 (26.2 ms there): an approximation, opt-in after validating it.
agent = dict(decision_interval=10, tick_dt=0.05, image_size={{_base_.image_size}},
             policy=dict(dtype="bfloat16", compile="inductor", cuda_graphs=True, merge_adapters=True))
suite = "sim-b2d-mini"
work_dir = "work_dirs/minddrive_qwen25_3B_infer"
