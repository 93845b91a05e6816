"""The vote rule shared by evaluation (k samples per input) and the filters (N samples per input)."""

from __future__ import annotations

from collections import Counter


def majority(answers: list[str | None]) -> str | None:
    """Most frequent parsed answer; a tie goes to the tied answer that was sampled first; None if none parsed."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    return next(a for a in answers if a is not None and votes[a] == top)
