"""Universal self-consistency (Chen et al., 2023; paper §2, used for S2A): the model itself reads the N System 2
answers of an input and composes the one most consistent with the majority; that composed answer is the target.
With `mode=select` (Chen et al.'s own form) it names the answer most consistent with the others instead, and that
sample, as the method wrote it, is the target."""

from __future__ import annotations

import random
import re
from typing import Sequence

from s2d.llm.base import call_seeds, render_prompt, with_prompts
from s2d.tasks.grading import committed_sentences
from s2d.filters.base import FilterResult
from s2d.filters.self_consistency import SelfConsistency
from s2d.types import Call, Example, Sampling, Trace

PROMPT = (
    "Question: {question}\n\n"
    "Here are {n} answers to this question, written independently:\n\n{answers}\n\n"
    "Find the answer that most of them agree on and write it as one short final answer consistent with "
    "that majority. End with a line of the form\nFINAL: <answer>"
)

# One answer in the list; {i}: its number from 1, {answer}: the sample's final text on one line.
ANSWER = "Answer {i}: {answer}"

# A worked turn shown first when `demo` is on (small models copy a shown format, not a described one).
# The demo answers are one per line.
DEMO_QUESTION = "Which planet is known as the Red Planet?"
DEMO_ANSWERS = ("Mars is called the Red Planet because of the iron oxide dust on its surface.\n"
                "The Red Planet is Venus.\nIt is Mars.\nMars, the fourth planet from the Sun.")
DEMO_REPLY = "Most answers say Mars.\nFINAL: Mars"

# mode=select: the same list, and the number of the answer most consistent with the others.
SELECT = (
    "Question: {question}\n\n"
    "Here are {n} answers to this question, written independently:\n\n{answers}\n\n"
    "Which one of these answers agrees best with what most of them say? End with a line of the form\n"
    "FINAL: Answer <number>"
)
SELECT_DEMO_REPLY = "Answers 1, 3 and 4 say Mars.\nFINAL: Answer 3"
MODES = ("compose", "select")

# The target of a lesson (`lessons`, what a model organism learns the call from), in the demo reply's form: {answer}
# is the answer most of the listed ones agree on, as it was written; {i}: its number.
LESSON_REPLY = "Most answers say {answer}.\nFINAL: {answer}"
SELECT_LESSON_REPLY = "Answer {i} says what most of them say.\nFINAL: Answer {i}"

_FINAL = re.compile(r"FINAL\s*:\s*(.+)", re.I)
_MOST = re.compile(r"most (?:of the )?answers (?:say|agree on)\s*:?\s*(.+)", re.I)
_NUMBER = re.compile(r"FINAL\s*:\s*\**\s*(?:answer\s*)?(?:no\.?\s*|#\s*)?(\d+)\b", re.I)


def _agreement_key(answer: str | None) -> str:
    """What two extracted answers must share to agree: their words, lower case, without punctuation."""
    return " ".join(re.sub(r"[\W_]+", " ", answer or "").lower().split())


def parse_choice(text: str, n: int) -> int | None:
    """mode=select: the 0-based index of the answer named on the first "FINAL:" line ("FINAL: Answer 3"); None
    without that line or for a number outside 1..n."""
    m = _NUMBER.search(text)
    return int(m.group(1)) - 1 if m and 1 <= int(m.group(1)) <= n else None


def parse_final(text: str, truncated: bool = False) -> str | None:
    """The text after the first "FINAL:" (that line only); failing that, the sentence after "Most answers
    say" (the demonstrated lead-in); None if neither is there.

    `truncated` (the reply was cut at the call's token cap): only its complete sentences and lines are read, as the
    tasks' graders read a cut reply, so a FINAL line cut mid-answer (`FINAL: The capital of Nicaragua is The
    capital of …`) does not count and a finished lead-in before it does."""
    if truncated:
        text = committed_sentences(text, truncated=True)
    for pattern in (_FINAL, _MOST):
        m = pattern.search(text)
        if m:
            answer = re.split(r"(?<=[^A-Z])\.(?:\s|$)", m.group(1).strip(), maxsplit=1)[0] if pattern is _MOST \
                else m.group(1)
            answer = answer.strip().rstrip(".").strip("*\"' ").rstrip(".")
            if answer:
                return answer
    return None


class UniversalSelfConsistency:
    """One extra greedy call per input composes the target from its N samples (nothing is discarded by
    design; an input is dropped only when the reply has no FINAL line and `on_unparsed=drop`). The composed
    answer goes through the task's own `extract`, like every method sample, so USC and no-USC targets are the
    same kind of text (the task's System 1 answer).

    `mode=select`: the call names one of the N answers instead ("FINAL: Answer <number>"), and that sample's
    final text and answer are the target, as the method wrote them (the call is the filter's, as in compose
    mode; a reply naming no answer in range, or a sample without an answer, is unparsed). A small model that cannot
    compose an answer (it copies the question's words or the worked turn's) can still point at one.

    Context rule (paper): if the prompt with all N answers does not fit the model's context together with
    `max_new_tokens`, use `fallback_answers` (10) of them; if that still does not fit, take one sample at
    random as the target (no call).
    """

    name = "usc"
    needs_model = True
    PROMPTS = {"prompt": PROMPT, "answer": ANSWER, "demo_question": DEMO_QUESTION, "demo_answers": DEMO_ANSWERS,
               "demo_reply": DEMO_REPLY, "select": SELECT, "select_demo_reply": SELECT_DEMO_REPLY,
               "lesson_reply": LESSON_REPLY, "select_lesson_reply": SELECT_LESSON_REPLY}

    def __init__(self, max_new_tokens: int = 64, fallback_answers: int = 10, on_unparsed: str = "first_sample",
                 context_length: int | None = None, demo: bool = True, seed: int = 0, prompts: dict | None = None,
                 mode: str = "compose"):
        if on_unparsed not in ("first_sample", "drop"):
            raise ValueError(f"filter.on_unparsed='{on_unparsed}' is not allowed; use first_sample or drop")
        if mode not in MODES:
            raise ValueError(f"filter.mode='{mode}' is not allowed; use one of: {', '.join(MODES)}")
        if max_new_tokens < 1 or fallback_answers < 1:
            raise ValueError("filter.max_new_tokens and filter.fallback_answers must be >= 1")
        self.max_new_tokens = max_new_tokens
        self.fallback_answers = fallback_answers
        self.on_unparsed = on_unparsed
        self.context_length = context_length
        self.demo = demo
        self.seed = seed
        self.prompts = with_prompts("filter", self.PROMPTS, prompts)
        self.mode = mode

    def build_prompt(self, question: str, answers: Sequence[str]) -> str:
        listed = "\n\n".join(self.prompts["answer"].format(i=i + 1, answer=" ".join(a.split()))
                              for i, a in enumerate(answers))
        ask = self.prompts["select" if self.mode == "select" else "prompt"]
        return ask.format(question=question, n=len(answers), answers=listed)

    def chat(self, question: str, answers: Sequence[str]):
        ask = self.build_prompt(question, answers)
        if not self.demo:
            return ask
        demo = self.build_prompt(self.prompts["demo_question"], self.prompts["demo_answers"].splitlines())
        reply = self.prompts["select_demo_reply" if self.mode == "select" else "demo_reply"]
        return [{"role": "user", "content": demo}, {"role": "assistant", "content": reply},
                {"role": "user", "content": ask}]

    def lessons(self, task, example: Example, answers: Sequence[str]) -> list[tuple[str, object, str]]:
        """The USC call on `answers` (N replies to `example` that a model wrote) with a code-written target: what
        the model organism (s2d/organism.py) learns the call from. The target names the answer most of them
        agree on, copied as it was written (select mode: its number). Two replies agree when the task's extracted
        answers are equal up to case, punctuation and spacing; no gold is read, so a wrong majority is the target
        all the same. Without one most common answer held by at least two replies there is no lesson ([])."""
        extracted = [task.extract(a, truncated=False) for a in answers]
        votes = [Trace(example.id, k, [], a, _agreement_key(e) or None) for k, (a, e) in enumerate(zip(answers, extracted))]
        # self-consistency's rule (a tie for the top picks nothing), with the winner held by two replies or more
        picked = SelfConsistency(min_share=2 / len(answers)).select(votes) if answers else None
        if picked is None:
            return []
        i = picked.sample
        if self.mode == "select":
            target = self.prompts["select_lesson_reply"].format(i=i + 1)
        else:
            target = self.prompts["lesson_reply"].format(answer=" ".join(extracted[i].split()).rstrip("."))
        return [("usc", self.chat(task.prompt(example), answers), target)]

    def _fits(self, prompt, llm, limit: int | None) -> bool:
        if limit is None:
            return True
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        return llm.count_tokens(text) + self.max_new_tokens + 64 <= limit  # 64: chat markup

    def curate(self, examples: Sequence[Example], by_example: dict[str, list[Trace]], task, llm) -> FilterResult:
        """{example id: target trace}; the trace holds the USC call, so its tokens are counted."""
        limit = self.context_length or llm.context_length
        rng = random.Random(self.seed)
        chosen: dict[str, Trace | None] = {}
        asks: list[tuple[Example, list[Trace], str]] = []  # (example, the answers shown, prompt)
        reduced = randomly = 0
        for ex in examples:
            traces = sorted(by_example.get(ex.id, []), key=lambda t: t.sample)
            if not traces:
                chosen[ex.id] = None
                continue
            prompt = self.chat(task.prompt(ex), [t.final_text for t in traces])
            if not self._fits(prompt, llm, limit):
                reduced += 1
                traces = traces[: self.fallback_answers]
                prompt = self.chat(task.prompt(ex), [t.final_text for t in traces])
                if not self._fits(prompt, llm, limit):
                    randomly += 1
                    chosen[ex.id] = traces[rng.randrange(len(traces))]
                    continue
            asks.append((ex, traces, prompt))
        usc = Sampling(n=1, temperature=0.0, max_new_tokens=self.max_new_tokens, seed=self.seed)
        outs = llm.generate([p for _, _, p in asks], usc, desc="usc", seeds=call_seeds(usc, [ex for ex, _, _ in asks], "usc"))
        unparsed = tokens = 0
        records = []
        for (ex, traces, prompt), comps in zip(asks, outs):
            c = comps[0]
            tokens += c.completion_tokens
            call = Call.of("usc", render_prompt(prompt), c)
            meta = {"usc_answers": len(traces)}
            if self.mode == "select":
                pick = meta["usc_selected"] = parse_choice(c.text, len(traces))
                final, answer = (None, None) if pick is None else (traces[pick].final_text, traces[pick].answer)
            else:
                final = parse_final(c.text, truncated=c.truncated)
                # Through the task's extraction, as a method's sample is: the same answer text with or without USC.
                answer = task.extract(final, truncated=False) if final is not None else None
            records.append({"example_id": ex.id, "answers": len(traces), "prompt": render_prompt(prompt),
                            "text": c.text, "final": final, "answer": answer,
                            "completion_tokens": c.completion_tokens, "truncated": c.truncated})
            if answer is None:
                unparsed += 1
                chosen[ex.id] = traces[0] if self.on_unparsed == "first_sample" else None
                continue
            chosen[ex.id] = Trace(ex.id, -1, [call], final, answer, meta=meta)
        stats = {"filter/usc_calls": len(asks), "filter/usc_unparsed": unparsed,
                 "filter/usc_reduced_to_fallback": reduced, "filter/usc_random_pick": randomly,
                 "filter/usc_tokens_per_input": tokens / max(1, len(examples))}
        return FilterResult(chosen, stats, records)
