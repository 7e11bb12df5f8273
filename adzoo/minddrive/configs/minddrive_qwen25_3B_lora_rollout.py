# Rollouts of MindDrive (Qwen2.5-3B) on the embedded simulator; fewer worlds per GPU worker than 0.5B.
_base_ = ["_base_/models/minddrive_qwen25_3b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# bf16 weights. Not compile / cuda_graphs here: a world that starts an episode decides off the common phase,
# so batch sizes vary and every new size pays a recompile or a capture (run 5, 32 simulators, H200: 7.5
# compiled + graphs, 12.3 graphs, 15.3-15.5 bf16 decision steps/s). Not merge_adapters either (the 0.5B
# rollouts use it): three merged copies of the 3B are ~16.6 GB per worker process, x8 workers on one GPU.
# The leaderboard agent (one process, fixed batch 1) uses compile, graphs and merged adapters.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=2, threads_per_worker=2,
               policy=dict(dtype="bfloat16"))
