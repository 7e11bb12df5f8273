# PPO on the decision expert of MindDrive-3B.
_base_ = ["minddrive_qwen25_3B_lora_rollout.py"]
ppo = dict(epochs=10, batch_size=32, learning_rate=1e-5)
rl_routes = dict(count=256)
