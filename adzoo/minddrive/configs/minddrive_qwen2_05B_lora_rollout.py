# Rollouts of MindDrive (Qwen2-0.5B, decision expert sampled) on the embedded simulator.
#   minddrive collect adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py --ckpt ckpts/minddrive_05b_converted --out work_dirs/rollouts
_base_ = ["_base_/models/minddrive_qwen2_05b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# bf16 weights. Not compile / cuda_graphs here: a world that starts an episode decides off the common phase,
# so batch sizes vary and every new size pays a recompile or a capture; with 32 simulators on an H200 that
# made the 0.5B collector slower (7.5 and 12.3 vs 13.2 decision steps/s, benchmarks/RESULTS.md run 5). The
# leaderboard agent (fixed batch 1) uses them.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=4, threads_per_worker=2,
               policy=dict(dtype="bfloat16"))
