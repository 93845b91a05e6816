"""Routing between distilled System 1 and System 2: confidence signals, decisions, the accuracy–cost frontier.

Every function here works on stored per-input records (the routed stage's `route.jsonl`), so any threshold
and any signal can be evaluated after the fact without calling a model. A record holds, for one eval input:
the distilled answer's correctness and tokens, System 2's, and per signal its value in [0, 1] (high: the
distilled answer is trusted) and the extra tokens that signal cost (`signal_tokens`).

An input is routed to System 2 when its signal is below the threshold; its cost is then the System 1
attempt, the signal's extra calls and all of System 2's calls (the paper's #Tokens, counted in full).
"""

from __future__ import annotations

import math
from typing import Sequence

from s2d.stats import wilson

SIGNALS = ("agreement", "probability", "swap")


def agreement(answer: str | None, samples: Sequence[str | None]) -> float:
    """Share of the cheap samples whose answer equals the distilled answer; 0 when that answer is unparsed."""
    if answer is None or not samples:
        return 0.0
    return sum(s == answer for s in samples) / len(samples)


def probability(answer: str | None, logprob: float | None) -> float:
    """The distilled model's probability of the completion that gave its answer; 0 when that answer is unparsed."""
    if answer is None:
        return 0.0
    if logprob is None:
        raise ValueError("probability signal: the completion has no log-probability (the backend reported none)")
    return math.exp(logprob)


def swap_consistency(answer: str | None, swapped_answer: str | None, swap) -> float:
    """1 when the verdict on the swapped pair, mapped back by `swap`, equals this order's verdict; else 0."""
    if answer is None or swapped_answer is None:
        return 0.0
    return float(swap(swapped_answer) == answer)


def decide(records: Sequence[dict], signal: str, threshold: float) -> list[bool]:
    """Per input, whether it goes to System 2: its signal is below `threshold`."""
    return [r["signals"][signal] < threshold for r in records]


def routed_rows(records: Sequence[dict], signal: str, threshold: float) -> list[dict]:
    """Per-input predictions of the routed system at one threshold (the predictions.jsonl of `routed`)."""
    out = []
    for r, to_s2 in zip(records, decide(records, signal, threshold)):
        src = "system2" if to_s2 else "distilled"
        tokens = r["distilled_tokens"] + r["signal_tokens"][signal] + (r["system2_tokens"] if to_s2 else 0)
        out.append({"example_id": r["example_id"], "routed": to_s2, "signal": r["signals"][signal],
                    "answer": r[f"{src}_answer"], "correct": bool(r[f"{src}_correct"]), "gold": r.get("gold"),
                    "tokens": tokens})
    return out


def summarize(rows: Sequence[dict], threshold: float) -> dict:
    """Accuracy (with its Wilson 95% interval), tokens per input and share routed of routed predictions."""
    n, k = len(rows), sum(r["correct"] for r in rows)
    low, high = wilson(k, n)
    return {"threshold": threshold, "accuracy": k / max(1, n), "ci_low": low, "ci_high": high, "n": n,
            "correct": k, "tokens_per_input": sum(r["tokens"] for r in rows) / max(1, n),
            "share_routed": sum(r["routed"] for r in rows) / max(1, n)}


def route(records: Sequence[dict], signal: str, threshold: float) -> dict:
    """The routed system's figures at one threshold, input by input."""
    return summarize(routed_rows(records, signal, threshold), threshold)


def thresholds(values: Sequence[float]) -> list[float]:
    """One threshold per distinct routing decision: each distinct signal value (routing everything below it),
    and the smallest float above the largest value (routing everything)."""
    distinct = sorted(set(values))
    return distinct + [math.nextafter(distinct[-1], math.inf)] if distinct else []


def frontier(records: Sequence[dict], signal: str) -> list[dict]:
    """The routed system's figures at every threshold that changes a decision, lowest threshold first.

    Computed from the records sorted by signal and running sums (one pass), not by routing again per threshold.
    """
    n = len(records)
    order = sorted(records, key=lambda r: r["signals"][signal])
    base_tokens = sum(r["distilled_tokens"] + r["signal_tokens"][signal] for r in records)
    kept_correct = sum(bool(r["distilled_correct"]) for r in records)  # every input kept, at first
    s2_correct = s2_tokens = routed = 0
    points = []
    for t in thresholds([r["signals"][signal] for r in records]):
        while routed < n and order[routed]["signals"][signal] < t:
            r = order[routed]
            kept_correct -= bool(r["distilled_correct"])
            s2_correct += bool(r["system2_correct"])
            s2_tokens += r["system2_tokens"]
            routed += 1
        k = kept_correct + s2_correct
        low, high = wilson(k, n)
        points.append({"threshold": t, "accuracy": k / max(1, n), "ci_low": low, "ci_high": high, "n": n,
                       "correct": k, "tokens_per_input": (base_tokens + s2_tokens) / max(1, n),
                       "share_routed": routed / max(1, n)})
    return points


def cheapest_reaching(points: Sequence[dict], accuracy: float) -> dict | None:
    """The frontier point with the fewest tokens per input whose accuracy is at least `accuracy` (a tie in
    tokens: the one routing fewer inputs); None when no threshold reaches it."""
    reaching = [p for p in points if p["accuracy"] >= accuracy]
    return min(reaching, key=lambda p: (p["tokens_per_input"], p["share_routed"])) if reaching else None


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` ranking the positive items first (ties count one half); None when
    either class is empty. Mann–Whitney form with average ranks."""
    pos = sum(bool(p) for p in positive)
    neg = len(positive) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1  # tied scores share their average rank
        i = j + 1
    rank_sum = sum(r for r, p in zip(ranks, positive) if p)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def calibration(records: Sequence[dict], signal: str, threshold: float) -> dict:
    """How well a signal predicts a wrong distilled answer: AUROC (a low signal ranking the wrong answers first),
    and at `threshold` the distilled accuracy on the inputs kept and on those routed, and System 2's on the latter."""
    wrong = [not r["distilled_correct"] for r in records]
    routed = decide(records, signal, threshold)
    kept_rows = [r for r, g in zip(records, routed) if not g]
    routed_rows_ = [r for r, g in zip(records, routed) if g]
    return {
        "auroc": auroc([-r["signals"][signal] for r in records], wrong),
        "wrong": sum(wrong),
        "kept_n": len(kept_rows),
        "kept_distilled_accuracy": _share([bool(r["distilled_correct"]) for r in kept_rows]),
        "routed_n": len(routed_rows_),
        "routed_distilled_accuracy": _share([bool(r["distilled_correct"]) for r in routed_rows_]),
        "routed_system2_accuracy": _share([bool(r["system2_correct"]) for r in routed_rows_]),
    }


def point_of(metrics: dict, system: str) -> dict | None:
    """A system's point for the frontier plot from run metrics (None when the run has no such system)."""
    if metrics.get(f"{system}/accuracy") is None:
        return None
    return {"accuracy": metrics[f"{system}/accuracy"], "ci_low": metrics.get(f"{system}/accuracy_ci_low"),
            "ci_high": metrics.get(f"{system}/accuracy_ci_high"),
            "tokens_per_input": metrics[f"{system}/tokens_per_input"]}


def frontier_rows(frontier: dict) -> list[dict]:
    """Every signal's frontier points as flat rows (a `signal` column), for W&B tables and line charts."""
    return [{"signal": s, **p} for s, data in frontier["signals"].items() for p in data["points"]]
