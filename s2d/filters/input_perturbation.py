"""Self-consistency under input perturbation (paper §3.3, BSM): keep a pair only if its verdict survives a swap."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from s2d.filters.base import FilterResult
from s2d.tasks.judge import swap_verdict
from s2d.types import Example, Trace
from s2d.voting import majority


def order_verdict(traces: Sequence[Trace]) -> str | None:
    """The verdict of one order: the majority of its samples' parsed verdicts, a tie going to the verdict
    sampled first (the rule evaluation uses for k samples); None if no sample has one."""
    return majority([t.answer for t in sorted(traces, key=lambda t: t.sample)])


class InputPerturbation:
    """The method ran on every pair in both orders (the task makes both inputs); the swapped verdict is
    mapped back to the original order, and both inputs are kept only if the two verdicts agree.

    Kept inputs are trained on in both orders, each with its own verdict as the target.
    """

    name = "input_perturbation"
    needs_model = False

    def curate(self, examples: Sequence[Example], by_example: dict[str, list[Trace]], task, llm=None
               ) -> FilterResult:
        pairs: dict[str, dict[str, Example]] = defaultdict(dict)
        for ex in examples:
            if "pair" not in ex.meta:
                raise ValueError(f"filter=input_perturbation needs inputs judged in both orders; task "
                                 f"'{task.name}' gives none. Use task=oasst2 or task=mt_bench")
            pairs[ex.meta["pair"]][ex.meta["order"]] = ex
        picks: dict[str, Trace | None] = {ex.id: None for ex in examples}
        consistent = 0
        for both in pairs.values():
            if set(both) != {"ab", "ba"}:
                continue
            ab, ba = by_example.get(both["ab"].id, []), by_example.get(both["ba"].id, [])
            v_ab, v_ba = order_verdict(ab), order_verdict(ba)
            if v_ab is None or v_ab != swap_verdict(v_ba):
                continue
            consistent += 1
            picks[both["ab"].id] = next(t for t in ab if t.answer == v_ab)
            picks[both["ba"].id] = next(t for t in ba if t.answer == v_ba)
        return FilterResult(picks, {"filter/pairs": len(pairs), "filter/consistent_pairs": consistent,
                                    "filter/pair_yield": consistent / max(1, len(pairs))})
