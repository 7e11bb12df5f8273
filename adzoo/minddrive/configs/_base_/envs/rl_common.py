# Online-RL settings shared by every rollout / PPO config (docs/upstream.md#online-rl). Override per experiment.
seed = 0
# Upstream reward: +1 at 100 % route completion, -1 and the episode ends at the first penalty event.
reward = dict(type="SparseRouteReward")
rollout = dict(
    num_workers=2,             # worker processes (each: one policy copy + envs_per_worker worlds, batched)
    envs_per_worker=4,
    decision_interval=1,       # upstream decides on every simulator tick (docs/rl_protocol.md)
    temperature=1.0,           # sampling temperature of the decision expert's categorical
    stop_on_penalty=True,      # upstream: a rollout episode ends at the first penalty event
    device="cpu",              # "cuda" on a GPU machine
    threads_per_worker=1,
    lease_s=300.0,             # a claim without heartbeat for this long goes back to the queue
    max_attempts=3,            # a route that kills its worker this often is parked as failed
    max_restarts=10,
    ray_address=None,          # "auto" or "ray://head:10001" runs workers as Ray actors
)
# Training routes: embedded seeds >= RL_SEED_START (1,000,000); evaluation suites use seeds < 100,000,
# so RL never trains on an evaluation route. Each rl-loop iteration shifts the seeds by `count`.
rl_routes = dict(type="seeds", count=32, seed_start=1_000_000)
rl = dict(gamma=0.99, gae_lambda=1.0)  # upstream's, per decision = per tick
ppo = dict(epochs=10, batch_size=32, learning_rate=8e-6, weight_decay=1e-5, clip_coef=0.2, value_coef=0.5,
           kl_coef=0.5, entropy_coef=0.0, max_grad_norm=35.0, trainable=("decision_expert", "value_head"))  # upstream: the value LoRA stays frozen
# Closed-loop evaluation after each rl-loop iteration: the held-out embedded suite (or a prefix of it).
rl_eval = dict(suite="sim-b2d-mini", limit=None, num_envs=4)
