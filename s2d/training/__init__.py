"""Answer-only supervised fine-tuning with Lightning (paper §3.2, step 6)."""

from s2d.training.data import SFTDataModule, build_features
from s2d.training.module import SFTModule

__all__ = ["SFTDataModule", "SFTModule", "build_features"]
