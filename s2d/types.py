"""The small records every stage exchanges: examples, LLM calls, traces."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def request_seed(*parts: Any) -> int:
    """A seed determined by `parts` alone (e.g. run seed, example id, call stage, sample index), in [0, 2**31)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16) % 2**31


@dataclass
class Example:
    """One task input; `gold` is None for unlabeled inputs."""

    id: str
    input: str
    gold: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


DRAFT_MAX_NEW_TOKENS = 24  # token cap of an input the model helps write (s2d/stages/inputs.py), unless its task says


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters of one batch of LLM calls; temperature 0 means greedy."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass
class Completion:
    """One generated text with exact token counts from the tokenizer that produced it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # generation hit max_new_tokens: no EOS, no stop string
    # Sum of the counted tokens' log-probabilities under the model's own distribution (temperature 1); None
    # where the backend does not report them. Not copied into Call records: its float rounding varies with
    # batching, and records must not. The `probability` routing signal (s2d/routing.py) reads it.
    logprob: float | None = None


@dataclass
class Call:
    """One LLM call made by a method: which stage, what was asked, what came back."""

    stage: str
    prompt: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # the completion hit max_new_tokens (records written before this field read False)

    @classmethod
    def of(cls, stage: str, prompt: str, c: Completion) -> Call:
        """The record of one completion."""
        return cls(stage, prompt, c.text, c.prompt_tokens, c.completion_tokens, c.truncated)


@dataclass
class Trace:
    """One sample of a method on one example; its cost is the sum over its calls."""

    example_id: str
    sample: int
    calls: list[Call]
    final_text: str
    answer: str | None = None
    # Per-sample facts a stage counts, e.g. {"fallback": True} when a method fell back to the raw input.
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        return cls(
            example_id=d["example_id"],
            sample=d["sample"],
            # Keys a Call does not declare are skipped, so records another version of s2d wrote still read
            # (a per-call "logprob", always null, that a working copy wrote for a few minutes).
            calls=[Call(**{k: v for k, v in c.items() if k in _CALL_FIELDS}) for c in d["calls"]],
            final_text=d["final_text"],
            answer=d.get("answer"),
            meta=d.get("meta") or {},
        )


_CALL_FIELDS = frozenset(f.name for f in fields(Call))
