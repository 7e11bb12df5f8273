"""The CARLA backend: a :class:`~minddrive.sim.base.DriveEnv` on a CARLA 0.9.15 server.

Same observation, ``info`` and ``route_record()`` as the embedded simulator, so the rollout
collector, the closed-loop driver and the leaderboard agent run on it unchanged
(``env=dict(type="CarlaDriveEnv", port=..., tm_port=...)``).

The pure logic lives in modules without a ``carla`` import (tested without a server):
:mod:`.route` (route densification and tracking, navigation commands), :mod:`.criteria`
(infraction criteria and record building) and :mod:`.observation` (observations from sensor
data). :mod:`.env` holds :class:`CarlaDriveEnv`, which only moves data between them and the
``carla`` client API, imported lazily.
"""
