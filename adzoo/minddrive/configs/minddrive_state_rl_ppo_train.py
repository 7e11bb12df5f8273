# RL research without the VLA model: a small decision policy over privileged state features
# (minddrive.rl.feature_policy.StateFeaturePolicy) with the simulator's scripted action expert
# (sim.controller.decision_to_plan). Same collector, decoupler, PPO and loop as the real model.
#   minddrive rl-loop adzoo/minddrive/configs/minddrive_state_rl_ppo_train.py --ckpt <init ckpt> --iterations 3
_base_ = ["_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
model = dict(type="StateFeaturePolicy", hidden=64)
env = dict(render=False)
rollout = dict(num_workers=0, envs_per_worker=8)
rl_routes = dict(count=48)
ppo = dict(epochs=10, batch_size=64, learning_rate=3e-3, entropy_coef=0.0)
rl_eval = dict(limit=24, num_envs=8)
