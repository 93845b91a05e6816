"""Scoring a system's answers on the eval split: predictions per input and the figures every system reports.

Pure functions of the examples, the traces and the task's grader (no stage directory, no model), so the
evaluate stage and the routed system (s2d/stages/route.py) report the same figures the same way.
"""

from __future__ import annotations

from collections import defaultdict

from s2d.stats import wilson
from s2d.tasks.base import extra_metrics
from s2d.types import Example, Trace
from s2d.voting import majority


def score(examples: list[Example], traces: list[Trace], task, system: str) -> tuple[list[dict], dict]:
    """Per-example predictions and the system's figures.

    An input's prediction is the majority answer of its k samples (k = 1: its only sample) and its
    tokens are summed over all k samples (the paper's #Tokens); no parsable answer is a wrong answer.
    """
    by_example: dict[str, list[Trace]] = defaultdict(list)
    for t in traces:
        by_example[t.example_id].append(t)
    rows = []
    for ex in examples:
        ts = sorted(by_example[ex.id], key=lambda t: t.sample)
        answer = majority([t.answer for t in ts])
        rows.append({
            "example_id": ex.id, "input": ex.input, "output": ts[0].final_text, "answer": answer,
            "votes": [t.answer for t in ts], "gold": ex.gold, "correct": task.score(answer, ex),
            "tokens": sum(t.completion_tokens for t in ts), "calls": sum(len(t.calls) for t in ts),
            "call_tokens": [[c.completion_tokens for c in t.calls] for t in ts],
            "fallbacks": sum(bool(t.meta.get("fallback")) for t in ts),
            "truncated": sum(c.truncated for t in ts for c in t.calls),  # calls that hit max_new_tokens
            "group": ex.meta.get("group"),
        })
    metrics = accuracy_figures(rows, system)
    metrics[f"{system}/parse_failures"] = sum(r["answer"] is None for r in rows)
    metrics[f"{system}/fallbacks"] = sum(r["fallbacks"] for r in rows)
    # Share of all calls of all samples that stopped at eval.max_new_tokens (no EOS, no stop string).
    metrics[f"{system}/truncated"] = sum(r["truncated"] for r in rows) / max(1, sum(r["calls"] for r in rows))
    metrics.update(task_figures(examples, rows, task, system))
    return rows, metrics


def changes(before: list[dict], after: list[dict]) -> tuple[int, int]:
    """(answers, verdicts) that differ between two prediction files of the same items. A grader can move a
    verdict without moving the text it extracts (TriviaQA's answer is the committed text)."""
    old = {r["example_id"]: (r["answer"], r["correct"]) for r in before}
    answers = sum(old.get(r["example_id"], (None, None))[0] != r["answer"] for r in after)
    verdicts = sum(old.get(r["example_id"], (None, None))[1] != r["correct"] for r in after)
    return answers, verdicts


def task_figures(examples: list[Example], rows: list[dict], task, system: str) -> dict:
    """The figures that depend on the task, over prediction rows (`example_id`, `answer`, `correct`, `tokens`):
    the same figures per input group, for tasks that tag inputs with one (TriviaQA: biased / unbiased), and the
    task's figures over several inputs (judge tasks: agreement over both orders of each pair)."""
    group = {ex.id: ex.meta.get("group") for ex in examples}
    out = {}
    for g in sorted({v for v in group.values() if v}):
        out.update(accuracy_figures([r for r in rows if group[r["example_id"]] == g], system, f"_{g}"))
    # Tasks whose figures span several inputs (judging a pair in both orders) add them here: an optional
    # task part (tasks/base.py ExtraMetrics).
    extra = extra_metrics(task, examples, {r["example_id"]: r["answer"] for r in rows}, system)
    if extra:
        out.update(extra)
        out.update(agreement_intervals(extra, system))
    return out


def accuracy_figures(rows: list[dict], system: str, suffix: str = "") -> dict:
    """Accuracy with its n and Wilson 95% interval, and tokens per input, over `rows`."""
    n, k = len(rows), sum(bool(r["correct"]) for r in rows)
    low, high = wilson(k, n)
    return {
        f"{system}/accuracy{suffix}": k / max(1, n),
        f"{system}/accuracy{suffix}_ci_low": low,
        f"{system}/accuracy{suffix}_ci_high": high,
        f"{system}/tokens_per_input{suffix}": sum(r["tokens"] for r in rows) / max(1, n),
        f"{system}/n{suffix}": n,
    }


def agreement_intervals(extra: dict, system: str) -> dict:
    """Wilson 95% interval of each `<system>/agreement<suffix>`; agreement counts a pair's two orders, so
    its n is twice `<system>/pairs<suffix>` and its count of agreeing verdicts is agreement × n."""
    out = {}
    head = f"{system}/agreement"
    for key, value in extra.items():
        suffix = key[len(head):] if key.startswith(head) else None
        pairs = extra.get(f"{system}/pairs{suffix}")
        if suffix is None or pairs is None:
            continue
        n = 2 * pairs
        low, high = wilson(round(value * n), n)
        out[f"{head}{suffix}_ci_low"], out[f"{head}{suffix}_ci_high"] = low, high
        out[f"{head}{suffix}_n"] = n
    return out
