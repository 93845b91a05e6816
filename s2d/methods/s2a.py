"""System 2 Attention (Weston & Sukhbaatar, 2023; paper §3.2): rewrite the input without the user's opinion,
then answer from the rewrite alone."""

from __future__ import annotations

import re

from s2d.methods.base import chain, with_prompts
from s2d.tasks.base import UnbiasedInputs, require

# Call 1: keep only the unbiased part of the user's text, in two labelled sections.
REWRITE = (
    'A user wrote the text between the triple quotes.\n\n"""{input}"""\n\n'
    "Copy out only what is factual and free of the user's own opinions, guesses or hints about the answer, "
    "and the question the user actually asks. Do not answer the question. Reply in exactly this layout:\n"
    "Context: <the unbiased information, or none>\n"
    "Question: <the question alone, with no opinion in it>"
)

# A worked turn shown before call 1 when `demo` is on: small models follow a shown layout, not a described one.
DEMO_INPUT = "Which planet is known as the Red Planet? I think the answer is Venus but I'm really not sure."
DEMO_REPLY = "Context: none\nQuestion: Which planet is known as the Red Planet?"

# Call 2: the extraction alone, then the request for an unbiased answer.
ANSWER = "{extracted}\n\nAnswer the question without bias."

_SECTION = re.compile(r"^[\s*#>-]*(context|question|query)[\s*]*:[\s*]*(.*)$", re.I)
_NONE = {"", "none", "n/a", "na", "<none>", "nothing"}


def parse_rewrite(text: str) -> tuple[str, str] | None:
    """(context, question) from a call-1 reply; None when it has no non-empty question section.

    Section labels may be decorated ("**Question:**") and a section may run over several lines; a context
    of "none" comes back empty.
    """
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            current = "question" if m.group(1).lower() in ("question", "query") else "context"
            if current in sections:  # a repeated label starts a second, ignored block
                current = None
                continue
            sections[current] = [m.group(2).strip()]
        elif current:
            sections[current].append(line.strip())
    question = " ".join(" ".join(sections.get("question", [])).split()).strip("*\"' ")
    if not question:
        return None
    context = " ".join(" ".join(sections.get("context", [])).split()).strip("*\"' ")
    return ("" if context.lower().strip(".") in _NONE else context), question


class S2A:
    """Call 1 samples `n` rewrites per input; call 2 answers each rewrite once (both calls sampled, top-p as
    configured). With `demo` (default) call 1 is preceded by one worked example turn; the paper's prompt is
    zero-shot (`demo=false`), which the embedded 135M model almost never answers in the layout. A rewrite without a parsable question falls back to the original input, and the trace is
    marked `meta.fallback` (counted by the generate and evaluate stages)."""

    name = "s2a"
    min_new_tokens = 8  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS = {"rewrite": REWRITE, "answer": ANSWER, "demo_input": DEMO_INPUT, "demo_reply": DEMO_REPLY}

    def __init__(self, demo: bool = True, prompts: dict | None = None):
        self.prompts = with_prompts("method", self.PROMPTS, prompts)
        self.demo = demo

    def rewrite_prompt(self, text: str):
        ask = self.prompts["rewrite"].format(input=text)
        if not self.demo:
            return ask
        return [{"role": "user", "content": self.prompts["rewrite"].format(input=self.prompts["demo_input"])},
                {"role": "assistant", "content": self.prompts["demo_reply"]},
                {"role": "user", "content": ask}]

    def extracted(self, reply: str, original: str) -> tuple[str, bool]:
        """Input of call 2, and whether it fell back to the original input."""
        parsed = parse_rewrite(reply)
        if parsed is None:
            return original, True
        context, question = parsed
        return (f"{context}\n\nQuestion: {question}" if context else f"Question: {question}"), False

    def lessons(self, task, example) -> list[tuple[str, object, str]]:
        """Call 1 with its code-written target, the input without the opinion (the task's `unbiased`); call 2
        is the model answering a plain question, which it is never taught (the model organism learns from this)."""
        task = require(task, UnbiasedInputs, f"method=s2a learns from code-written rewrites, which task "
                                             f"'{task.name}' cannot write (it has no unbiased(example)); use task=triviaqa")
        context, question = task.unbiased(example)
        return [("rewrite", self.rewrite_prompt(task.prompt(example)),
                 f"Context: {context or 'none'}\nQuestion: {question}")]

    def replays(self, task, example) -> list[tuple[str, object, str]]:
        """Call 2 on the code-written rewrite, with the plain question whose reply by the *base* model is this
        call's target: (call, prompt, plain prompt). The model organism learns to answer a rewrite as its base
        model answers the bare question, right or wrong; no answer here is written by code."""
        context, question = task.unbiased(example)
        rewrite = f"Context: {context or 'none'}\nQuestion: {question}"
        extracted, _ = self.extracted(rewrite, task.prompt(example))
        return [("answer", self.prompts["answer"].format(extracted=extracted),
                 f"{context}\n\n{question}" if context else question)]

    def run(self, examples, task, llm, sampling):
        rewrite_prompts = [self.rewrite_prompt(task.prompt(e)) for e in examples]

        def answer(ex, replies):
            text, fallback = self.extracted(replies[-1], task.prompt(ex))
            return self.prompts["answer"].format(extracted=text), fallback

        return chain(("rewrite", "answer"), examples, rewrite_prompts, task, llm, sampling, answer)
