# PPO on the decision expert of MindDrive-0.5B (upstream: 10 epochs, batch 32 per GPU, 8 GPUs; rl_common.py).
#   bash adzoo/minddrive/minddrive_run_mutil_train_ppo.sh 8 adzoo/minddrive/configs/minddrive_rl_ppo_train.py <il_ckpt> <dataset_index.pkl>
#   minddrive rl-loop adzoo/minddrive/configs/minddrive_rl_ppo_train.py --ckpt <il_ckpt> --iterations 5
_base_ = ["./minddrive_qwen2_05B_lora_rollout.py"]

# The GPU learner (float32 masters under autocast) re-scores the steps before each update, since the bf16
# rollouts' log-probs differ from its own, and replays its LLM layers from CUDA graphs, since the eager update
# is bound by launching the LoRA layers' small kernels (PPOHyperParams). compile=None: eager.
ppo = dict(recompute_old_log_probs=True, compile=dict(backend="inductor", llm_mode="reduce-overhead"))
rl_routes = dict(count=256)
