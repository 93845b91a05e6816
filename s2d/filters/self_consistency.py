"""Self-consistency of outputs (paper §3.1): keep the majority answer of N samples; a tie for the top drops the input."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from s2d.filters.base import FilterResult, each_input
from s2d.types import Example, Trace


class SelfConsistency:
    """Keep the most frequent parsed answer unless another answer has as many votes (the paper's rule).

    `min_share` (default 0, off) also asks the winner to hold that share of all N samples; samples whose
    answer could not be parsed count towards N but vote for nothing.
    """

    name = "self_consistency"
    needs_model = False

    def __init__(self, min_share: float = 0.0):
        if not 0.0 <= min_share <= 1.0:
            raise ValueError(f"filter.min_share must lie in [0, 1], got {min_share}")
        self.min_share = min_share

    def select(self, traces: Sequence[Trace]) -> Trace | None:
        votes = Counter(t.answer for t in traces if t.answer is not None)
        if not votes:
            return None
        ranked = votes.most_common()
        answer, count = ranked[0]
        if len(ranked) > 1 and ranked[1][1] == count:
            return None
        if count / len(traces) < self.min_share:
            return None
        return next(t for t in traces if t.answer == answer)

    def curate(self, examples: Sequence[Example], traces_by_input: dict[str, list[Trace]], task=None,
               llm=None) -> FilterResult:
        return each_input(self.select, examples, traces_by_input)
