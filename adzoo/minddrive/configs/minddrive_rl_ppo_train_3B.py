# PPO on the decision expert of MindDrive-3B.
_base_ = ["minddrive_qwen25_3B_lora_rollout.py"]
# The GPU rollouts score decisions with bf16 weights (the 0.5B's with merged adapters), the learner with float32
# masters under autocast: PPO re-scores the steps with the learner before each update, so ratios start at 1.
ppo = dict(epochs=10, batch_size=32, learning_rate=1e-5, recompute_old_log_probs=True)
rl_routes = dict(count=256)
