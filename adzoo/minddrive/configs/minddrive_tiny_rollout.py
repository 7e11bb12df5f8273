# Rollouts of the tiny MindDrive (CPU) on the embedded simulator: the quick start and the throughput benchmark.
#   minddrive collect adzoo/minddrive/configs/minddrive_tiny_rollout.py --ckpt work_dirs/minddrive_tiny_converted --out work_dirs/tiny_rollouts
_base_ = ["./_base_/models/minddrive_tiny.py", "./_base_/envs/embedded.py", "./_base_/envs/rl_common.py"]

env = dict(image_size={{_base_.image_size}})
rl_routes = dict(count=16)
