# PPO / rl-loop for the tiny MindDrive on CPU: the demo's RL stage, sized to run in minutes on 2 cores.
#   minddrive convert --ckpt work_dirs/minddrive_tiny_train_stage3 --out work_dirs/minddrive_tiny_converted
#   minddrive rl-loop adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py --ckpt work_dirs/minddrive_tiny_converted --iterations 3
# The parity setting (upstream sparse reward, upstream PPO values) is minddrive_rl_ppo_train_parity44.py.
_base_ = ["./minddrive_tiny_rollout.py"]

# Reward: the dense ShapedReward (route progress, leaderboard-weighted penalties for every infraction, min-speed
# included, +1 at completion), ending the episode at each penalty event. Upstream's sparse reward scores
# "blocked" and "route timeout" 0, so early PPO learned to stop and wait, and it is blind to the min-speed
# infractions that cost the tiny IL policy most of its Driving Score (benchmarks/RESULTS.md, RL).
PENALTY_EVENTS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light", "stop_infraction",
                  "route_dev", "outside_route_lanes", "vehicle_blocked", "route_timeout")
reward = dict(type="ShapedReward", progress_weight=1.0, penalty_weight=1.0, comfort_weight=0.0, success=1.0,
              terminate_on=PENALTY_EVENTS)

# One process, all worlds in one VecDriveEnv: every decision tick is one batched policy call (the tiny model is
# cheap; a second process on 2 shared cores only adds contention).
rollout = dict(num_workers=1, envs_per_worker=8, temperature=1.0)
rl_routes = dict(count=16)
rl_iterations = 2   # `rl-loop` / demo default when --iterations is not given
# A short horizon: 0.9 per 0.5 s decision looks ~5 s ahead, about the time from a speed decision to the
# collision or min-speed check it causes. With upstream's 0.99 every decision of a <= 42-decision episode is
# credited with nearly the whole return and the value net explained ~0 of its variance; 0.9 is what lifted the
# held-out Driving Score above IL for every seed (benchmarks/RESULTS.md, Demo, "Session 2" and "Session 4").
rl = dict(gamma=0.9)

# The converted decision expert is weak and nearly state-independent after IL: with upstream's clip 0.2 /
# lr 1e-5, or lr 1e-3 with target_kl, two iterations left its argmax unchanged (RESULTS.md, "Session 1"). A wider
# clip, no early stop, a weak KL anchor and a small entropy bonus (sampling stays alive) let each iteration
# move the distribution measurably.
# Deviations from upstream's protocol for the CPU demo (docs/rl_protocol.md): a shaped reward (progress and
# penalties every tick; the sparse +1/-1 gives 16 tiny-model routes almost no signal), gamma 0.9 at 2 Hz decisions,
# and a faster, looser update (lr 1e-3, clip 0.5, 2 epochs, small KL and an entropy bonus) so two iterations move.
ppo = dict(epochs=2, batch_size=64, learning_rate=1e-3, kl_coef=0.01, entropy_coef=0.01, clip_coef=0.5,
           target_kl=None)
# The held-out suite prefix every iteration (and the IL checkpoint, iteration 0) is scored on.
rl_eval = dict(suite="sim-b2d-mini", limit=16, num_envs=8)
