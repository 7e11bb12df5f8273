# Closed-loop inference with the qwen2_05B MindDrive on a GPU: the real model config, weights from
# ckpts/Qwen2-0.5B and the checkpoint given with --ckpt (never a hub).
#   minddrive eval adzoo/minddrive/configs/minddrive_qwen2_05B_infer.py --ckpt <ckpt> --suite sim-b2d-mini
_base_ = ["./_base_/models/minddrive_qwen2_05b.py", "./_base_/envs/closed_loop_gpu.py", "./_base_/default_runtime.py"]

env = dict(image_size={{_base_.image_size}})
agent = dict(image_size={{_base_.image_size}})
work_dir = "work_dirs/minddrive_qwen2_05B_infer"
