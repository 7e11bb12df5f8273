"""Driving environments: the embedded simulator (default) and the CARLA backend.

Importing the package registers ``EmbeddedDriveEnv`` in ``minddrive.registry.ENVS``.
"""

from minddrive.sim import env as _env  # noqa: F401  (registers EmbeddedDriveEnv)
