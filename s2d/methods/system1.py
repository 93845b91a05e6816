"""System 1: the model answers directly, with no intermediate tokens (paper Eq. 2), zero- or few-shot."""

from __future__ import annotations

from s2d.methods.base import fewshot_messages, single_call, with_prompts


class System1:
    """`shots` > 0 puts question → final-answer examples before the question (paper Table 4's System 1 row).

    It adds no text of its own (the task's prompt is the whole request), so `prompts` is empty.
    """

    name = "system1"
    min_new_tokens = 1  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS: dict[str, str] = {}

    def __init__(self, shots: int = 0, seed: int = 0, prompts: dict | None = None):
        self.shots = shots
        self.seed = seed  # the few-shot draw (data_seed), not sampling
        self.prompts = with_prompts("system1", self.PROMPTS, prompts)

    def run(self, examples, task, llm, sampling):
        if self.shots:
            prompts = [fewshot_messages(task, e, self.shots, self.seed, lambda s: task.format_answer(s.gold))
                       for e in examples]
        else:
            prompts = [task.prompt(e) for e in examples]
        return single_call("answer", examples, prompts, task, llm, sampling)
