"""LLM backends and model resolution."""

from s2d.llm.base import LLM, Prompt, render_prompt
from s2d.llm.model import ModelSource

__all__ = ["LLM", "ModelSource", "Prompt", "render_prompt"]
