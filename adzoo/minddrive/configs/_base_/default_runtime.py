# Runtime settings every experiment inherits: seeding, where outputs go, how progress is logged and saved.
# Override per experiment in the config itself or with `--cfg-options seed=1 work_dir=...`.

seed = 0
# Also ask torch for deterministic kernels (slower; exact reruns on one machine).
deterministic = False

# Checkpoints, logs and TensorBoard event files are written under this folder.
work_dir = "work_dirs/default"

log_level = "INFO"
log_config = dict(
    interval=50,        # iterations between log lines / TensorBoard scalars
    tensorboard=True,   # write event files to {work_dir}/tensorboard
    progress_bar=True,  # tqdm bar with ETA on long loops
)

# Crash safety: an atomic checkpoint every `interval` iterations (an epoch of real data is hours long),
# the newest `max_keep` kept.
checkpoint_config = dict(by_epoch=False, interval=2000, max_keep=3)

# Weights to start from: a previous stage's work dir (its newest checkpoint) or a checkpoint directory.
load_from = None
# Resume from {work_dir}/latest (optimiser, scheduler, RNG and data order) when True.
resume = False
