# Online RL of the real (0.5B / 3B) models: embedded-simulator rollouts with the model on a GPU.
_base_ = ["./embedded.py", "./rl_common.py"]

env = dict(image_size=(640, 640))  # the real models' camera input (EVA-02-L/16)
# Eight worker processes share the GPU, each stepping its worlds in one batch with bf16 weights. Not compile or
# CUDA graphs: a world that starts an episode decides off the common phase, so batch sizes vary and every new
# size pays a recompile or a capture (benchmarks/RESULTS.md, "Config choices"). The leaderboard agent, at a
# fixed batch 1, uses both.
rollout = dict(device="cuda", num_workers=8, threads_per_worker=2, policy=dict(dtype="bfloat16"))
