"""Rollout: one policy driving simulator worlds, shared by RL rollouts (``minddrive.rl``) and closed-loop
evaluation (``minddrive.eval``), which both build on it and never on each other.

``driver`` batches the decisions of several worlds into one ``policy.act`` call; ``policy`` loads, saves and
places a policy (``minddrive.interfaces.DrivingPolicy``); ``worlds`` builds the simulator worlds of a config.
A reward is passed in (``PolicyDriver(reward_factory=...)``), never imported from ``minddrive.rl``.
Importing the package is cheap; its modules load on use.
"""
