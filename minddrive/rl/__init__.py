"""Online RL (docs/upstream.md#online-rl): rollouts, rewards, decoupling, PPO on the decision expert, the RL loop.

Importing the package registers the rewards (``REWARDS``) and the state-feature research policy
(``MODELS``); heavier modules (collector, ppo, loop) are imported where used.
"""

from minddrive.rl import feature_policy, rewards  # noqa: F401  (registers into REWARDS / MODELS)
