# PPO on the decision expert of MindDrive-0.5B (upstream: 10 epochs, batch 32 per GPU, 8 GPUs).
#   bash adzoo/minddrive/minddrive_run_mutil_train_ppo.sh 8 adzoo/minddrive/configs/minddrive_rl_ppo_train.py <il_ckpt> <dataset_index.pkl>
#   minddrive rl-loop adzoo/minddrive/configs/minddrive_rl_ppo_train.py --ckpt <il_ckpt> --iterations 5
_base_ = ["minddrive_qwen2_05B_lora_rollout.py"]
# The GPU rollouts score decisions with bf16 weights (the 0.5B's with merged adapters), the learner with float32
# masters under autocast: PPO re-scores the steps with the learner before each update, so ratios start at 1.
# The learner's LLM layers replay from CUDA graphs, the ViT blocks and the query decoder compiled: eager, the
# update is bound by the host launching the LoRA layers' small kernels (benchmarks/RESULTS.md, run 9). The
# first minibatches pay the compile; compile=None where inductor/triton are unavailable.
ppo = dict(epochs=10, batch_size=32, learning_rate=1e-5, recompute_old_log_probs=True,
           compile=dict(backend="inductor", llm_mode="reduce-overhead"))
rl_routes = dict(count=256)
