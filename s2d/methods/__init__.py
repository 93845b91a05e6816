"""System 1 and System 2 methods: LLM programs from examples to traces with counted tokens."""

from s2d.methods.base import Method, single_call

__all__ = ["Method", "single_call"]
