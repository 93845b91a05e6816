"""Self-consistency of outputs: keep the majority answer of N samples; no clear winner drops the input."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from s2d.types import Trace


class SelfConsistency:
    """Keep the most frequent answer if it beats every other answer and holds at least `min_share` of the N samples.

    Samples whose answer could not be parsed count towards N but vote for nothing.
    """

    name = "self_consistency"

    def __init__(self, min_share: float = 0.5):
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
