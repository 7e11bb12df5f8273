# Closed-loop driving of a trained model: `minddrive eval` on the embedded simulator's suite, and the Bench2Drive
# leaderboard agent (team_code/minddrive_b2d_agent.py) in CARLA. Both decide at 2 Hz, as the 2 Hz planning
# waypoints. The configs set env.image_size and agent.image_size to their model's input size.
_base_ = ["./embedded.py"]

eval_driver = dict(decision_interval=5)           # the embedded simulator ticks at 10 Hz
agent = dict(decision_interval=10, tick_dt=0.05)  # CARLA ticks at 20 Hz
suite = "sim-b2d-mini"
