"""MindDrive: a driving vision-language-action model trained by imitation and online RL.

Layers: ``sim`` (embedded simulator, CARLA backend), ``data``, ``models``,
``train`` (imitation), ``rl`` (rollout, decouple, PPO), ``eval`` (closed loop,
scoring). Importing the package is cheap; heavy modules load on use.
"""

__version__ = "0.1.0"
