"""Imitation learning: the training loop, optimiser/schedule, distributed launch, open-loop evaluation.

``train(cfg, work_dir, resume=False)`` and ``evaluate_open_loop(cfg, ckpt)`` are the in-process
entry points (the demo calls them); ``minddrive train`` / ``minddrive test`` wrap them.
"""

from minddrive.train import optim  # noqa: F401  (registers the optimisers in OPTIMIZERS)


def train(cfg, work_dir=None, resume=False, launcher="none", overwrite=False):
    """See :func:`minddrive.train.trainer.train`."""
    from minddrive.train.trainer import train as _train

    return _train(cfg, work_dir, resume=resume, launcher=launcher, overwrite=overwrite)


def evaluate_open_loop(cfg, ckpt, **kwargs):
    """See :func:`minddrive.train.openloop.evaluate_open_loop`."""
    from minddrive.train.openloop import evaluate_open_loop as _evaluate

    return _evaluate(cfg, ckpt, **kwargs)


__all__ = ["train", "evaluate_open_loop"]
