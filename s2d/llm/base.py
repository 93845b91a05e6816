"""What every backend offers the methods: chat prompts in, completions with token counts out."""

from __future__ import annotations

from typing import Protocol, Sequence, Union

from s2d.types import Completion, Sampling

# A prompt is either a bare user message or a full chat (list of {"role", "content"}).
Prompt = Union[str, Sequence[dict]]


def as_messages(prompt: Prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def render_prompt(prompt: Prompt) -> str:
    """Readable one-string form of a prompt, for the records on disk."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in prompt)


class LLM(Protocol):
    """A batch of prompts → for each prompt, `sampling.n` completions."""

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "") -> list[list[Completion]]: ...

    def count_tokens(self, text: str) -> int: ...
