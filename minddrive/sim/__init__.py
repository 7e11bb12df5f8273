"""Driving environments: the embedded simulator (default) and the CARLA backend.

Importing the package registers ``EmbeddedDriveEnv`` and ``CarlaDriveEnv`` in ``minddrive.registry.ENVS``
(the CARLA backend imports ``carla`` only when it connects).
"""

from minddrive.sim import env as _env  # noqa: F401  (registers EmbeddedDriveEnv)
from minddrive.sim.carla import env as _carla_env  # noqa: F401  (registers CarlaDriveEnv)
