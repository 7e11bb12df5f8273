"""minddrive.data: Bench2Drive-layout clips + Chat-B2D QA -> tokenised, collated training batches.

Importing the package registers the dataset (``DATASETS``) and the image transforms (``TRANSFORMS``).
"""

from minddrive.data import dataset, transforms  # noqa: F401  (registers into DATASETS / TRANSFORMS)
from minddrive.data.collate import build_dataloader, collate_batch, set_epoch
from minddrive.data.dataset import Bench2DriveDataset

__all__ = ["Bench2DriveDataset", "build_dataloader", "collate_batch", "set_epoch"]
