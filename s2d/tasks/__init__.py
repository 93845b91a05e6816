"""Tasks: unlabeled train inputs, a labeled eval split, the System 1 prompt, answer extraction and scoring."""

from s2d.tasks.base import Task

__all__ = ["Task"]
