# The upstream setting, for comparison with the paper: the 44 CARLA rollout routes of upstream MindDrive's
# data/routes/rollout_routes.xml (all of them are also Bench2Drive-220 evaluation routes: upstream's
# train-test overlap, reproduced here on purpose), on CARLA 0.9.15 at 20 Hz. The repository ships that file
# as a test fixture; the path is relative to the repository root (run from there), and
# `--cfg-options rl_routes.path=FILE` points at another copy. Each route job carries its route file and id,
# so the env needs no `routes` of its own. Five repetitions per route and a decision every 20 Hz tick, as
# upstream's collection scripts run them (docs/rl_protocol.md).
_base_ = ["minddrive_rl_ppo_train.py"]
env = dict(_delete_=True, type="CarlaDriveEnv", host="localhost", port=30000, tm_port=50000, dt=0.05, timeout=60.0,
           render=True, image_size=(1600, 900), tick_limit=4000)
rl_routes = dict(_delete_=True, type="route_file", path="tests/fixtures/minddrive_release/rollout_routes.xml",
                 repetitions=5)
rollout = dict(decision_interval=1,
               num_workers=8, envs_per_worker=1)  # one CARLA server per worker (ports 30000 + 150 * i)
