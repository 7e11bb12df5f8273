"""MindDrive model: vision tokens, one Qwen2 with decision/action/value LoRA experts, trajectory head, policy.

Importing the package registers every buildable class in ``minddrive.registry.MODELS``.
"""

from minddrive.models import position_embedding, query_decoder, trajectory_head, vision  # noqa: F401 (registers)
from minddrive.models.minddrive import MindDrive
from minddrive.models.policy import MindDrivePolicy

__all__ = ["MindDrive", "MindDrivePolicy"]
