# Rollouts of the tiny MindDrive (CPU) on the embedded simulator: the quick start and the throughput benchmark.
#   minddrive collect adzoo/minddrive/configs/minddrive_tiny_rollout.py --ckpt work_dirs/minddrive_tiny_converted --out work_dirs/tiny_rollouts
_base_ = ["./_base_/models/minddrive_tiny.py", "./_base_/envs/embedded.py", "./_base_/envs/rl_common.py"]

env = dict(image_size={{_base_.image_size}})
rl_routes = dict(count=16)
# Deviations from upstream's protocol (docs/rl_protocol.md), kept for the CPU-sized demo: a decision every 5 ticks
# (2 Hz at the embedded 10 Hz) so a route costs a fifth of the policy calls, and GAE lambda 0.95, which with the
# shorter step count per route lowers the variance of a 16-route batch.
rollout = dict(decision_interval=5)
rl = dict(gae_lambda=0.95)
ppo = dict(trainable=("decision_expert", "value_expert", "value_head"))  # the value LoRA trains too: a faster critic
