# Rollouts of MindDrive (Qwen2.5-3B) on the embedded simulator; fewer worlds per GPU worker than 0.5B.
_base_ = ["_base_/models/minddrive_qwen25_3b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# The GPU inference path measured in benchmarks/RESULTS.md (#10): bf16 weights, the ViT blocks and the LLM /
# query-decoder layers compiled, the scene encoder and LLM passes replayed from CUDA graphs.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=2, threads_per_worker=2,
               policy=dict(dtype="bfloat16", compile="inductor", cuda_graphs=True))
