"""Branch-Solve-Merge as a pairwise judge (paper §3.3; Saha et al.).

branch: one call lists up to `max_criteria` evaluation criteria for the user's question;
solve:  one call per criterion scores both replies from 1 to 5 on it;
merge:  an LLM call turns the criteria and their scores into a verdict [[A]] / [[B]] / [[C]] (default; a
        reply without a verdict falls back to the summed scores, counted in `meta.fallback`),
        or, with `merge=sum`, the verdict follows the summed scores (no call).
`n` samples draw n branchings; each sample's solve and merge calls run once. Every call's tokens count.
"""

from __future__ import annotations

import re
from typing import Sequence

from s2d.llm.base import render_prompt
from s2d.methods.base import stage_sampling
from s2d.tasks.judge import PAIR_BLOCK
from s2d.types import Call, Trace

BRANCH = """Below is a user question and two assistant replies to it.

""" + PAIR_BLOCK + """

Do not judge the replies yet. List the criteria that matter most for judging a reply to this particular \
question (at most {k}), one per line, each as "<number>. <criterion>: <what it checks>"."""

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
DEMO_CRITERIA = ["Correctness: is the stated number of legs right", "Clarity: is the answer direct and easy to read"]
DEMO_BRANCH = "\n".join(f"{i}. {c}" for i, c in enumerate(DEMO_CRITERIA, 1))
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
    name = "bsm"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold a criteria list or a score line
    version = 2  # bump when a prompt or parsing changes: cached generations are then redone

    def __init__(self, max_criteria: int = 5, merge: str = "llm", demo: bool = True, fallback_criterion: str =
                 "overall helpfulness: how well the reply answers the question"):
        if merge not in ("llm", "sum"):
            raise ValueError(f"method.merge={merge!r}: allowed values are 'llm' and 'sum'")
        if not 1 <= max_criteria <= 5:
            raise ValueError(f"method.max_criteria must be 1..5 (the paper's branch limit), got {max_criteria}")
        self.max_criteria, self.merge, self.fallback_criterion = max_criteria, merge, fallback_criterion
        self.demo = demo

    def _chat(self, ask: str, demo_ask: str, demo_reply: str):
        """The prompt, after one worked exchange when `demo` is on."""
        if not self.demo:
            return ask
        return [{"role": "user", "content": demo_ask}, {"role": "assistant", "content": demo_reply},
                {"role": "user", "content": ask}]

    def run(self, examples, task, llm, sampling):
        def fields(ex):
            return {"query": ex.meta["query"], "a": ex.meta["a"], "b": ex.meta["b"]}

        missing = [ex.id for ex in examples if not {"query", "a", "b"} <= set(ex.meta)]
        if missing:
            raise ValueError(f"method=bsm judges pairs of replies; task '{task.name}' gives none "
                             f"(first input: {missing[0]}). Use task=oasst2 or task=mt_bench")
        demo_branch = BRANCH.format(k=self.max_criteria, **DEMO)
        branch_prompts = [self._chat(BRANCH.format(k=self.max_criteria, **fields(ex)), demo_branch, DEMO_BRANCH)
                          for ex in examples]
        demo_solve = SOLVE.format(criterion=DEMO_CRITERIA[0], **DEMO)
        branches = llm.generate(branch_prompts, sampling, desc="bsm branch")

        # One solve call per criterion of every sample; an empty branch falls back to one general criterion.
        samples, solve_prompts = [], []
        for ex, prompt, comps in zip(examples, branch_prompts, branches):
            for k, c in enumerate(comps):
                criteria = parse_criteria(c.text, self.max_criteria)
                fallback = not criteria
                criteria = criteria or [self.fallback_criterion]
                first = len(solve_prompts)
                solve_prompts += [self._chat(SOLVE.format(criterion=cr, **fields(ex)), demo_solve, DEMO_SOLVE)
                                  for cr in criteria]
                samples.append((ex, k, prompt, c, criteria, range(first, len(solve_prompts)), fallback))
        solves = llm.generate(solve_prompts, stage_sampling(sampling, 1, n=1), desc="bsm solve")

        merges = None
        if self.merge == "llm":
            demo_merge = MERGE.format(query=DEMO["query"], evaluations=f"Criterion 1: {DEMO_CRITERIA[0]}\n{DEMO_SOLVE}")
            merge_prompts = [
                self._chat(MERGE.format(query=ex.meta["query"], evaluations="\n\n".join(
                    f"Criterion {i + 1}: {cr}\n{solves[j][0].text}" for i, (cr, j) in enumerate(zip(criteria, idx)))),
                    demo_merge, DEMO_MERGE)
                for ex, _, _, _, criteria, idx, _ in samples
            ]
            merges = llm.generate(merge_prompts, stage_sampling(sampling, 2, n=1), desc="bsm merge")

        traces = []
        for s, (ex, k, prompt, branch, criteria, idx, fallback) in enumerate(samples):
            calls = [Call("branch", render_prompt(prompt), branch.text, branch.prompt_tokens, branch.completion_tokens)]
            scores = []
            for j in idx:
                c = solves[j][0]
                calls.append(Call("solve", render_prompt(solve_prompts[j]), c.text, c.prompt_tokens, c.completion_tokens))
                scores.append(parse_scores(c.text))
            meta = {"criteria": criteria, "scores": scores}
            if fallback:
                meta["fallback"] = True
            if merges is not None:
                m = merges[s][0]
                calls.append(Call("merge", render_prompt(merge_prompts[s]), m.text, m.prompt_tokens, m.completion_tokens))
                final, answer = m.text, task.extract(m.text)
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
