"""No filter (paper ablation): the first sample is the target, whatever the others say."""

from __future__ import annotations

from typing import Sequence

from s2d.filters.base import FilterResult, each_input
from s2d.types import Example, Trace


class NoFilter:
    name = "none"
    needs_model = False

    def select(self, traces: Sequence[Trace]) -> Trace | None:
        return traces[0] if traces else None

    def curate(self, examples: Sequence[Example], traces_by_input: dict[str, list[Trace]], task=None,
               llm=None) -> FilterResult:
        return each_input(self.select, examples, traces_by_input)
