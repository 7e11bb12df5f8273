# CARLA 0.9.15 backend (minddrive.sim.carla.env.CarlaDriveEnv): leaderboard timing and ports.
# Port i of a multi-server run: 30000 + 150*i (traffic manager 50000 + 150*i), as Bench2Drive's scripts.
env = dict(
    type="CarlaDriveEnv",
    host="localhost",
    port=30000,
    tm_port=50000,
    dt=0.05,                    # synchronous mode, fixed_delta_seconds of the leaderboard (20 Hz)
    timeout=60.0,               # client timeout; a tick that exceeds it marks the route 'Failed - Simulation crashed'
    routes=None,                # optional leaderboard route XML, so reset(options={"route_id": ...}) works
    render=True,                # the six Bench2Drive cameras
    image_size=(1600, 900),     # W, H of the real rig; the agent re-encodes JPEG q20 and resizes for the model
    launch_command=None,        # e.g. "$CARLA_ROOT/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port={port}"
    launch_wait=30.0,
    tick_limit=4000,            # Bench2Drive v0.0.2+: 200 s of game time
    tm_seed=0,
    hop_resolution=1.0,         # GlobalRoutePlanner hop, as the leaderboard's interpolate_trajectory
)
# The leaderboard agent (team_code/minddrive_b2d_agent.py) reads these.
agent = dict(decision_interval=10, tick_dt=0.05)
