"""What a filter is: all traces of every train input in, at most one distillation target per input out.

Every filter has one shape (paper §3.2, "unsupervised curation"):

    curate(examples, traces_by_input, task, llm) -> FilterResult(picks, stats, calls)

- `picks[example id]` is the chosen trace or None (dropped). A trace with `sample < 0` was written by the
  filter itself (USC's composed answer) and carries the filter's own call, so its tokens are counted.
- `stats` are the filter's own figures, flat `filter/...` keys (the stage adds yield and label precision).
- `calls` are every model call the filter made, parsed or not (written to `<name>_calls.jsonl`).
- `needs_model`: True when `curate` calls the model (`llm` is then the base model's backend; else None).

A filter that judges each input on its own traces writes `select(traces)` and gets `curate` from
`each_input`. Adding a filter is one module here + one YAML in conf/filter/ (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, runtime_checkable

from s2d.tasks.base import require
from s2d.types import Example, Trace


@dataclass
class FilterResult:
    picks: dict[str, Trace | None]
    stats: dict[str, float] = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)


class Filter(Protocol):
    name: str
    needs_model: bool

    def curate(self, examples: Sequence[Example], traces_by_input: dict[str, list[Trace]], task,
               llm) -> FilterResult: ...


@runtime_checkable
class TeachesFilter(Protocol):
    """Optional part: a filter whose model call the model organism can learn (`model.teach_filter`):
    `lessons(task, example, answers)` -> (call, prompt, code-chosen target) for the call on `answers` (replies
    a model wrote to `example`). A change to a filter's lessons bumps `Organism.version`, so organisms are rebuilt."""

    name: str

    def lessons(self, task, example: Example, answers: Sequence[str]) -> list[tuple[str, object, str]]: ...


OPTIONAL_FILTER_PARTS = (TeachesFilter,)


def teaching(flt, key: str = "model.teach_filter") -> TeachesFilter:
    """`flt` as a filter the organism can learn, else an error naming `key`."""
    return require(flt, TeachesFilter, f"{key}: filter '{flt.name}' cannot be taught (it has no lessons(task, "
                                       "example, answers)); filters with lessons: usc")


def each_input(select: Callable[[Sequence[Trace]], Trace | None], examples: Sequence[Example],
               traces_by_input: dict[str, list[Trace]]) -> FilterResult:
    """A per-input rule as a filter: `select` sees one input's traces, in sample order."""
    return FilterResult({ex.id: select(sorted(traces_by_input.get(ex.id, []), key=lambda t: t.sample))
                         for ex in examples})
