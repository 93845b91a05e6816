"""Branch-Solve-Merge as a pairwise judge (paper §3.3; Saha et al.).

branch: one call lists up to `max_criteria` evaluation criteria for the user's question (it sees the question only,
        as in the paper: the criteria are chosen before any reply is read);
solve:  one call per criterion scores both replies from 1 to 5 on it;
merge:  an LLM call turns the criteria and their scores into a verdict [[A]] / [[B]] / [[C]] (default; a
        reply without a verdict falls back to the summed scores, counted in `meta.fallback`),
        or, with `merge=sum`, the verdict follows the summed scores (no call).
`n` samples draw n branchings; each sample's solve and merge calls run once, each with its own seed.
Every call's tokens count. All prompt texts, the worked exchange included, are in `BranchSolveMerge.PROMPTS`
and replaceable as `method.prompts.<name>`.
"""

from __future__ import annotations

import re
from typing import Sequence

from s2d.llm.base import render_prompt
from dataclasses import replace

from s2d.methods.base import call_seeds, with_prompts
from s2d.tasks.base import Rubric, require
from s2d.tasks.judge import PAIR_BLOCK
from s2d.types import Call, Trace, request_seed

BRANCH = """Below is a question a user asked an assistant.

[User question]
{query}

Do not answer it. List the criteria that matter most for judging a reply to this particular question \
(at most {k}), one per line, each as "<number>. <criterion>: <what it checks>"."""

SOLVE = """Below is a user question and two assistant replies to it.

""" + PAIR_BLOCK + """

Judge both replies on one criterion only: {criterion}
Explain briefly, then end with one line exactly in this form:
Scores: Assistant A: <1-5>, Assistant B: <1-5>"""

MERGE = """A user question was answered by two assistants, and their replies were judged criterion by criterion.

[User question]
{query}

[Judgements per criterion]
{evaluations}

Weigh the judgements, write a short summary, and end with your final verdict: [[A]] if Assistant A's reply \
is better overall, [[B]] if Assistant B's is better, [[C]] for a tie."""

# One worked exchange per call, shown before the real one when `demo` is on (the default): zero-shot, the
# embedded 135M model mostly wrote no criteria list or score line, and no verdict (measured; README).
DEMO = {"query": "How many legs does a spider have?", "a": "A spider has eight legs.",
        "b": "Spiders have six legs, like all insects."}
DEMO_BRANCH = ("1. Correctness: is the stated number of legs right\n"
               "2. Clarity: is the answer direct and easy to read")
DEMO_SOLVE = ("Assistant A gives the right number, eight. Assistant B says six, which is wrong.\n"
              "Scores: Assistant A: 5, Assistant B: 1")
DEMO_MERGE = ("Assistant A is correct and clear; Assistant B is clear but wrong about the fact asked. "
              "Verdict: [[A]]")

_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*(.+?)\s*$")
_SCORES = re.compile(r"Assistant\s*A\W*?(\d)(?:\s*/\s*5)?\D+?Assistant\s*B\W*?(\d)", re.IGNORECASE | re.DOTALL)


def parse_criteria(text: str, limit: int = 5) -> list[str]:
    """Numbered or bulleted lines of the branch reply, at most `limit`; none listed → []."""
    items = []
    for line in (text or "").splitlines():
        m = _ITEM.match(line)
        if m and m.group(1).strip(" *:"):
            items.append(m.group(1).strip(" *"))
    return items[:limit]


def parse_scores(text: str) -> tuple[int, int] | None:
    """(score A, score B), each 1–5, from the last "Assistant A: x ... Assistant B: y" in a solve reply."""
    found = [(int(a), int(b)) for a, b in _SCORES.findall(text or "")]
    found = [(a, b) for a, b in found if 1 <= a <= 5 and 1 <= b <= 5]
    return found[-1] if found else None


def sum_verdict(scores: Sequence[tuple[int, int] | None]) -> str | None:
    """The symbolic merge: higher total wins, equal totals tie; no parsable score at all → None."""
    parsed = [s for s in scores if s is not None]
    if not parsed:
        return None
    a, b = sum(s[0] for s in parsed), sum(s[1] for s in parsed)
    return "A" if a > b else "B" if b > a else "C"


class BranchSolveMerge:
    """The worked exchange's solve call judges the first criterion of `demo_branch`; its merge call sees that
    criterion with `demo_solve`."""

    name = "bsm"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold a criteria list or a score line
    PROMPTS = {"branch": BRANCH, "solve": SOLVE, "merge": MERGE, "demo_query": DEMO["query"], "demo_a": DEMO["a"],
               "demo_b": DEMO["b"], "demo_branch": DEMO_BRANCH, "demo_solve": DEMO_SOLVE, "demo_merge": DEMO_MERGE}

    def __init__(self, max_criteria: int = 5, merge: str = "llm", demo: bool = True, fallback_criterion: str =
                 "overall helpfulness: how well the reply answers the question", prompts: dict | None = None):
        if merge not in ("llm", "sum"):
            raise ValueError(f"method.merge={merge!r}: allowed values are 'llm' and 'sum'")
        if not 1 <= max_criteria <= 5:
            raise ValueError(f"method.max_criteria must be 1..5 (the paper's branch limit), got {max_criteria}")
        self.max_criteria, self.merge, self.fallback_criterion = max_criteria, merge, fallback_criterion
        self.demo = demo
        self.prompts = with_prompts("method", self.PROMPTS, prompts)
        if demo and not parse_criteria(self.prompts["demo_branch"]):
            raise ValueError("method.prompts.demo_branch lists no criteria (numbered or bulleted lines); "
                             "the demo solve call needs one")

    def _chat(self, ask: str, demo_ask: str, demo_reply: str):
        """The prompt, after one worked exchange when `demo` is on."""
        if not self.demo:
            return ask
        return [{"role": "user", "content": demo_ask}, {"role": "assistant", "content": demo_reply},
                {"role": "user", "content": ask}]

    def branch_prompt(self, ex):
        """Call 1: the question alone (after the worked exchange when `demo` is on)."""
        p = self.prompts
        return self._chat(p["branch"].format(k=self.max_criteria, query=ex.meta["query"]),
                          p["branch"].format(k=self.max_criteria, query=p["demo_query"]), p["demo_branch"])

    def solve_prompt(self, ex, criterion: str):
        """Call 2, once per criterion: both replies judged on that criterion."""
        p = self.prompts
        demo = {"query": p["demo_query"], "a": p["demo_a"], "b": p["demo_b"]}
        demo_criterion = (parse_criteria(p["demo_branch"]) or [""])[0]
        return self._chat(p["solve"].format(criterion=criterion, query=ex.meta["query"], a=ex.meta["a"], b=ex.meta["b"]),
                          p["solve"].format(criterion=demo_criterion, **demo), p["demo_solve"])

    def merge_prompt(self, ex, criteria: Sequence[str], solved: Sequence[str]):
        """Call 3: the criteria with their judgements, turned into one verdict."""
        p = self.prompts
        demo_criterion = (parse_criteria(p["demo_branch"]) or [""])[0]
        demo_merge = p["merge"].format(query=p["demo_query"],
                                       evaluations=f"Criterion 1: {demo_criterion}\n{p['demo_solve']}")
        evaluations = "\n\n".join(f"Criterion {i + 1}: {cr}\n{text}" for i, (cr, text) in enumerate(zip(criteria, solved)))
        return self._chat(p["merge"].format(query=ex.meta["query"], evaluations=evaluations), demo_merge, p["demo_merge"])

    def lessons(self, task, example) -> list[tuple[str, object, str]]:
        """Every call on `example` with its code-written target, from the task's `rubric` (the model organism
        learns BSM from it): branch lists the rubric's criteria, each solve call gives that criterion's check
        and scores, merge (with merge=llm) adds the scores up into the verdict. Prompts are the ones `run` sends."""
        task = require(task, Rubric, f"method=bsm learns from code-written judgements, which task '{task.name}' "
                                     "cannot write (it has no rubric(example)); use task=organism/bsm")
        rubric = task.rubric(example)[:self.max_criteria]
        branch = "\n".join(f"{i}. {criterion}" for i, (criterion, *_) in enumerate(rubric, 1))
        criteria = parse_criteria(branch, self.max_criteria)  # as `run` reads the branch reply
        solved = [f"{check}\nScores: Assistant A: {a}, Assistant B: {b}" for _, check, a, b in rubric]
        total_a, total_b = sum(r[2] for r in rubric), sum(r[3] for r in rubric)
        verdict = sum_verdict([(a, b) for *_, a, b in rubric])
        merge = f"Assistant A scores {total_a} in all, Assistant B {total_b}. Verdict: [[{verdict}]]"
        calls = [("branch", self.branch_prompt(example), branch),
                 *(("solve", self.solve_prompt(example, cr), text) for cr, text in zip(criteria, solved))]
        # merge=sum makes no merge call, so there is nothing to teach for it
        return calls + ([("merge", self.merge_prompt(example, criteria, solved), merge)] if self.merge == "llm" else [])

    def run(self, examples, task, llm, sampling):
        missing = [ex.id for ex in examples if not {"query", "a", "b"} <= set(ex.meta)]
        if missing:
            raise ValueError(f"method=bsm judges pairs of replies; task '{task.name}' gives none "
                             f"(first input: {missing[0]}). Use task=oasst2, task=mt_bench or task=organism/bsm")
        branch_prompts = [self.branch_prompt(ex) for ex in examples]
        branches = llm.generate(branch_prompts, sampling, desc="bsm branch", seeds=call_seeds(sampling, examples, "branch"))

        # One solve call per criterion of every sample; an empty branch falls back to one general criterion.
        # Each later call has its own seed from (example, stage, sample, criterion).
        samples, solve_prompts, solve_seeds = [], [], []
        for ex, prompt, comps in zip(examples, branch_prompts, branches):
            for k, c in enumerate(comps):
                criteria = parse_criteria(c.text, self.max_criteria)
                fallback = not criteria
                criteria = criteria or [self.fallback_criterion]
                first = len(solve_prompts)
                solve_prompts += [self.solve_prompt(ex, cr) for cr in criteria]
                solve_seeds += [request_seed(sampling.seed, ex.id, "solve", k, j) for j in range(len(criteria))]
                samples.append((ex, k, prompt, c, criteria, range(first, len(solve_prompts)), fallback))
        once = replace(sampling, n=1)
        solves = llm.generate(solve_prompts, once, desc="bsm solve", seeds=solve_seeds)

        merges = None
        if self.merge == "llm":
            merge_prompts = [self.merge_prompt(ex, criteria, [solves[j][0].text for j in idx])
                             for ex, _, _, _, criteria, idx, _ in samples]
            merges = llm.generate(merge_prompts, once, desc="bsm merge",
                                  seeds=[request_seed(sampling.seed, ex.id, "merge", k) for ex, k, *_ in samples])

        traces = []
        for s, (ex, k, prompt, branch, criteria, idx, fallback) in enumerate(samples):
            calls = [Call.of("branch", render_prompt(prompt), branch)]
            scores = []
            for j in idx:
                c = solves[j][0]
                calls.append(Call.of("solve", render_prompt(solve_prompts[j]), c))
                scores.append(parse_scores(c.text))
            meta = {"criteria": criteria, "scores": scores}
            if fallback:
                meta["fallback"] = True
            if merges is not None:
                m = merges[s][0]
                calls.append(Call.of("merge", render_prompt(merge_prompts[s]), m))
                final, answer = m.text, task.extract(m.text, truncated=m.truncated)
                summed = sum_verdict(scores) if answer is None else None
                if summed is not None:
                    # A merge reply with no verdict falls back to the summed scores, and is counted.
                    answer, meta["fallback"], meta["merge_fallback"] = summed, True, True
                    final = f"{m.text}\n{task.format_answer(answer)}"
            else:
                answer = sum_verdict(scores)
                final = "\n".join(f"{cr}: {sc}" for cr, sc in zip(criteria, scores)) + \
                    (f"\n{task.format_answer(answer)}" if answer else "")
            traces.append(Trace(ex.id, k, calls, final, answer, meta=meta))
        return traces
