"""Rephrase and Respond (Deng et al., 2023; paper Figs. 3–5), in one call or two."""

from __future__ import annotations

from s2d.methods.base import chain, single_call, with_prompts

# One call: restate the question with more detail, then answer it (our paraphrase of paper Fig. 3).
ONE_STEP = "Restate the question above in your own words, adding any detail that makes it clearer, and then answer it."

# Call 1 of two: only the improved question comes back (our paraphrase of paper Figs. 4–5). {question}: the
# task's prompt; {note}: the task's extra words for this stage, after a space (empty for most tasks).
REPHRASE = (
    '"{question}"\n\n'
    "Rewrite the question above so that it is clearer and easier to answer well.{note}"
    " Reply with the rewritten question only, without answering it."
)

# Call 2: the rewritten question, then the task's closing line (e.g. coin flip's "Answer the Yes or No question.").
RESPOND = "{question}\n\n{suffix}"


class RaR1:
    name = "rar1"
    min_new_tokens = 8  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS = {"instruction": ONE_STEP}

    def __init__(self, prompts: dict | None = None):
        self.prompts = with_prompts("method", self.PROMPTS, prompts)

    def run(self, examples, task, llm, sampling):
        prompts = [f"{task.prompt(e)}\n\n{self.prompts['instruction']}" for e in examples]
        return single_call("rephrase_and_respond", examples, prompts, task, llm, sampling)


class RaR2:
    """Call 1 samples `n` rephrasings per input; call 2 answers each rephrasing once, so every stage is sampled n times.
    An empty rephrasing falls back to the original question, and the trace is marked `meta.fallback`."""

    name = "rar2"
    min_new_tokens = 8  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS = {"rephrase": REPHRASE, "respond": RESPOND}

    def __init__(self, prompts: dict | None = None):
        self.prompts = with_prompts("method", self.PROMPTS, prompts)

    def run(self, examples, task, llm, sampling):
        rephrase_prompts = [self.prompts["rephrase"].format(
            question=task.prompt(e), note=f" {task.rephrase_note}" if task.rephrase_note else "").strip()
                            for e in examples]

        def respond(ex, replies):
            # An empty rephrasing would leave call 2 nothing to answer: it gets the original question.
            rephrased = replies[-1]
            question = rephrased.strip() or task.prompt(ex)
            return self.prompts["respond"].format(question=question, suffix=task.respond_suffix).strip(), \
                not rephrased.strip()

        return chain(("rephrase", "respond"), examples, rephrase_prompts, task, llm, sampling, respond)
