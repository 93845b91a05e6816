"""What every backend offers the methods: chat prompts in, completions with token counts out."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from s2d.chat import Prompt, encode_chat, render_prompt  # noqa: F401  (backends and methods import them here)
from s2d.types import Completion, Example, Sampling, request_seed


def with_prompts(owner: str, defaults: Mapping[str, str], given: Mapping[str, Any] | None) -> dict[str, str]:
    """`defaults` with the texts given in config replacing theirs (a null keeps the default); an unknown
    name is an error naming `<owner>.prompts` and the allowed names."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{owner}.prompts: unknown {unknown}; allowed: {', '.join(defaults)}")
    return {**defaults, **{k: str(v) for k, v in given.items() if v is not None}}


def call_seeds(sampling: Sampling, examples: Sequence[Example], stage: str, *more: Any) -> list[int]:
    """One request seed per example for a call stage: sample k of example e then draws from a stream fixed by
    (sampling.seed, e.id, stage, *more, k), whatever the batch, chunk or shard it runs in."""
    return [request_seed(sampling.seed, ex.id, stage, *more) for ex in examples]


class LLM(Protocol):
    """A batch of prompts → for each prompt, `sampling.n` completions.

    `seeds[i]` is request i's seed: its sample k draws only from a stream fixed by (seeds[i], k), whatever
    the batch size or the other requests; None: request i's seed is `request_seed(sampling.seed, i)`.
    """

    # Longest sequence (prompt + completion) the model takes; None when unknown (USC's context rule).
    context_length: int | None

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "",
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]: ...

    def count_tokens(self, text: str) -> int: ...

    def release(self) -> None:
        """Free the model (and its accelerator memory) until the next call; before training, and between
        the engines of two systems, so two models never hold the device at once."""
        ...


@runtime_checkable
class KeepsThroughTraining(Protocol):
    """An optional backend part: `before_training()` frees what training needs and may keep the rest (a CPU
    vLLM engine shares no device memory with the trainer, and a restart costs a full engine start)."""

    def before_training(self) -> None: ...


def before_training(llm: LLM) -> Callable[[], None]:
    """What to call before the trainer loads its model: the backend's own `before_training`, else `release`."""
    return llm.before_training if isinstance(llm, KeepsThroughTraining) else llm.release
