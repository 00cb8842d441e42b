"""Training: `python -m fastseg.train ...` or `fastseg.train.fit(TrainConfig(...))`; single-process
or under `torchrun` (DDP). See docs/training.md."""
from .config import TrainConfig, UsageError  # noqa: F401
from .fit import fit  # noqa: F401

__all__ = ["TrainConfig", "UsageError", "fit"]
