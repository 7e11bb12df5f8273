# Rollouts of MindDrive (Qwen2-0.5B, decision expert sampled) on the embedded simulator.
#   minddrive collect adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py --ckpt ckpts/minddrive_05b_converted --out work_dirs/rollouts
_base_ = ["_base_/models/minddrive_qwen2_05b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# bf16 weights, LoRA adapters merged (re-merged after each PPO update). Not compile / cuda_graphs here: a
# world that starts an episode decides off the common phase, so batch sizes vary and every new size pays a
# recompile or a capture (run 5, 32 simulators, H200: 7.5 compiled + graphs, 12.3 graphs, 15.3-15.5 bf16
# decision steps/s). Run 6 (H100, one process): 17.94 bf16 -> 19.01 with merged adapters (benchmarks/RESULTS.md);
# the three merged copies are ~2.2 GB per worker process.
# The leaderboard agent (fixed batch 1) uses compile and graphs.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=4, threads_per_worker=2,
               policy=dict(dtype="bfloat16", merge_adapters=True))
