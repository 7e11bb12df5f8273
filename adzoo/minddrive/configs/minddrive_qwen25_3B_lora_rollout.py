# Rollouts of MindDrive (Qwen2.5-3B) on the embedded simulator; fewer worlds per GPU worker than 0.5B.
_base_ = ["_base_/models/minddrive_qwen25_3b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# bf16 weights. Not compile / cuda_graphs here: a world that starts an episode decides off the common phase,
# so batch sizes vary and every new size pays a recompile or a capture. With the 0.5B and 32 simulators on
# an H200: 7.5 (compiled + graphs) and 12.3 (graphs) vs 13.2 decision steps/s (bf16), 15.3-15.5 with bf16
# after images went to the device as uint8 (benchmarks/RESULTS.md run 5). The leaderboard agent (fixed
# batch 1) uses compile and graphs.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=2, threads_per_worker=2,
               policy=dict(dtype="bfloat16"))
