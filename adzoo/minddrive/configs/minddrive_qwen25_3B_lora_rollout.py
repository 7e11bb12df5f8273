# Rollouts of MindDrive (Qwen2.5-3B) on the embedded simulator.
_base_ = ["./_base_/models/minddrive_qwen25_3b.py", "./_base_/envs/rl_gpu.py"]

# Half the 0.5B's worlds per worker, and no merged adapters: three merged copies of the 3B per worker process,
# times eight workers, do not fit one GPU.
rollout = dict(envs_per_worker=2)
