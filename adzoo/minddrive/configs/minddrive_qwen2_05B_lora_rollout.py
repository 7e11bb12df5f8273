# Rollouts of MindDrive (Qwen2-0.5B, decision expert sampled) on the embedded simulator.
#   minddrive collect adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py --ckpt ckpts/minddrive_05b_converted --out work_dirs/rollouts
_base_ = ["./_base_/models/minddrive_qwen2_05b.py", "./_base_/envs/rl_gpu.py"]

# LoRA adapters merged into copies of the weights (re-merged after each PPO update): fewer kernels per decision,
# and the 0.5B's copies are small enough for eight workers on one GPU.
rollout = dict(envs_per_worker=4, policy=dict(merge_adapters=True))
