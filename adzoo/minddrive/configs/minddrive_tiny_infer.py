# Closed-loop inference with the tiny CPU model: `minddrive eval` on the embedded suite, or the CARLA agent.
_base_ = ["./_base_/models/minddrive_tiny.py", "./_base_/default_runtime.py"]

env = dict(type="EmbeddedDriveEnv", render=True, image_size={{_base_.image_size}})  # embedded simulator, 10 Hz
eval_driver = dict(decision_interval=5)                # 2 Hz decisions, as the 2 Hz planning waypoints
agent = dict(decision_interval=10, tick_dt=0.05, image_size={{_base_.image_size}})  # CARLA: 20 Hz ticks
suite = "sim-b2d-mini"
work_dir = "work_dirs/minddrive_tiny_infer"
