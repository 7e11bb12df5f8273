"""MindDrive: a driving vision-language-action model trained by imitation and online RL.

Layers, bottom to top (``minddrive.layers``, docs/architecture.md): the core (constants, errors, config,
registry, utils, interfaces, penalty), ``sim`` (embedded simulator, CARLA backend), ``data``, ``models``,
``rollout`` (one policy driving simulator worlds), then ``train`` (imitation), ``rl`` (collect, decouple,
PPO) and ``eval`` (closed loop, scoring), and the ``cli`` and ``demo`` on top. Importing the package is
cheap; heavy modules load on use.
"""

__version__ = "0.1.0"
