# PPO on the decision expert of MindDrive-3B: the 0.5B's PPO (minddrive_rl_ppo_train.py) on the 3B rollouts.
_base_ = ["./minddrive_qwen25_3B_lora_rollout.py"]

# As the 0.5B's learner, and a minibatch of 32 steps does not fit an 80 GB GPU in one pass: micro-batches of 8,
# gradients added up, one optimiser step per minibatch.
ppo = dict(recompute_old_log_probs=True, micro_batch_size=8,
           compile=dict(backend="inductor", llm_mode="reduce-overhead"))
rl_routes = dict(count=256)
