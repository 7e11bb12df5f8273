# PPO on the decision expert of MindDrive-3B.
_base_ = ["minddrive_qwen25_3B_lora_rollout.py"]
# The GPU rollouts score decisions with bf16 weights (the 0.5B's with merged adapters), the learner with float32
# masters under autocast: PPO re-scores the steps with the learner before each update, so ratios start at 1.
# The learner's LLM layers replay from CUDA graphs, the ViT blocks and the query decoder compiled: eager, the
# update is bound by the host launching the LoRA layers' small kernels (benchmarks/RESULTS.md, run 9). The
# first minibatches pay the compile; compile=None where inductor/triton are unavailable.
# A minibatch of 32 steps (64 LLM rows of ~420 tokens with gradients) does not fit an 80 GB GPU in one pass:
# micro-batches of 8, gradients added up, one optimiser step per minibatch.
ppo = dict(epochs=10, batch_size=32, learning_rate=1e-5, recompute_old_log_probs=True, micro_batch_size=8,
           compile=dict(backend="inductor", llm_mode="reduce-overhead"))
rl_routes = dict(count=256)
