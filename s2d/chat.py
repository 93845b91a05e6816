"""Chat prompts as text and tokens: the one rendering that backends (generation) and the trainer share, kept
below both so training needs no backend to encode a pair."""

from __future__ import annotations

from typing import Sequence, Union

# A prompt is either a bare user message or a full chat (list of {"role", "content"}).
Prompt = Union[str, Sequence[dict]]


def as_messages(prompt: Prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def encode_chat(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a chat prompt through the tokenizer's chat template, ready for the assistant's reply: the
    one rendering every backend and the trainer share, so generation and training see the same tokens."""
    text = tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def render_prompt(prompt: Prompt) -> str:
    """Readable one-string form of a prompt, for the records on disk."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in prompt)
