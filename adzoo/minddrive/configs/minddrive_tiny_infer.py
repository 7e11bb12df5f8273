# Closed-loop inference with the tiny CPU model: `minddrive eval` on the embedded suite, or the CARLA agent.
_base_ = ["./_base_/models/minddrive_tiny.py", "./_base_/envs/closed_loop.py", "./_base_/default_runtime.py"]

env = dict(image_size={{_base_.image_size}})
agent = dict(image_size={{_base_.image_size}})
work_dir = "work_dirs/minddrive_tiny_infer"
