# PPO / rl-loop for the tiny MindDrive on CPU (the demo's RL stage).
#   minddrive rl-loop adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py --ckpt <converted tiny ckpt> --iterations 3
_base_ = ["minddrive_tiny_rollout.py"]
ppo = dict(epochs=4, batch_size=32, learning_rate=1e-4)
rl_eval = dict(limit=16, num_envs=4)
