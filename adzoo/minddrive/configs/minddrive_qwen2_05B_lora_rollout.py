# Rollouts of MindDrive (Qwen2-0.5B, decision expert sampled) on the embedded simulator.
#   minddrive collect adzoo/minddrive/configs/minddrive_qwen2_05B_lora_rollout.py --ckpt ckpts/minddrive_05b_converted --out work_dirs/rollouts
_base_ = ["_base_/models/minddrive_qwen2_05b.py", "_base_/envs/embedded.py", "_base_/envs/rl_common.py"]
env = dict(image_size=(640, 640))
# The GPU inference path measured in benchmarks/RESULTS.md (#10): bf16 weights, the ViT blocks and the LLM /
# query-decoder layers compiled, the scene encoder and LLM passes replayed from CUDA graphs.
rollout = dict(device="cuda", num_workers=8, envs_per_worker=4, threads_per_worker=2,
               policy=dict(dtype="bfloat16", compile="inductor", cuda_graphs=True))
