"""No filter (paper ablation): the first sample is the target, whatever the others say."""

from __future__ import annotations

from typing import Sequence

from s2d.types import Trace


class NoFilter:
    name = "none"

    def select(self, traces: Sequence[Trace]) -> Trace | None:
        return traces[0] if traces else None
