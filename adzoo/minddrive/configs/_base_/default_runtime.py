# Runtime settings every experiment inherits: seeding, where outputs go, how progress is logged.
# Override per experiment in the config itself or with `--cfg-options seed=1 work_dir=...`.

seed = 0
# Also ask torch for deterministic kernels (slower; exact reruns on one machine).
deterministic = False

# Checkpoints, logs and TensorBoard event files are written under this folder.
work_dir = "work_dirs/default"

log_level = "INFO"
log_config = dict(
    interval=10,        # iterations between log lines / TensorBoard scalars
    tensorboard=True,   # write event files to {work_dir}/tensorboard
    progress_bar=True,  # tqdm bar with ETA on long loops
)

checkpoint_config = dict(
    interval=1,         # epochs between checkpoints
    max_keep=3,         # older checkpoints are deleted
)

# Resume from {work_dir}/latest (optimiser, scheduler, RNG and data order) when True.
resume = False
