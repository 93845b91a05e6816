"""Zero-shot chain-of-thought: reason step by step, then a fixed "Final answer:" line (paper Fig. 10)."""

from __future__ import annotations

from s2d.methods.base import fewshot_messages, single_call

INSTRUCTION = (
    "Work through the problem step by step. When you are done, write the result on its own last line "
    'as "Final answer: <your answer>".'
)


class CoT:
    name = "cot"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold this method's format
    version = 1  # bump when a prompt's wording changes: cached generations are then redone

    def __init__(self, instruction: str | None = None):
        self.instruction = instruction or INSTRUCTION

    def prompt(self, task, example) -> str:
        return f"{task.prompt(example)}\n\n{self.instruction}"

    def run(self, examples, task, llm, sampling):
        prompts = [self.prompt(task, e) for e in examples]
        return single_call("reason", examples, prompts, task, llm, sampling)


class CoTFewShot:
    """Few-shot chain-of-thought: `shots` worked solutions from the train split, then the question."""

    name = "cot_fewshot"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold this method's format
    version = 1

    def __init__(self, shots: int = 8, seed: int = 0):
        self.shots = shots
        self.seed = seed

    def run(self, examples, task, llm, sampling):
        if not hasattr(task, "solution"):
            raise ValueError(f"method=cot_fewshot needs worked solutions, which task '{task.name}' does not have; "
                             "use method=cot")
        prompts = [fewshot_messages(task, e, self.shots, self.seed, task.solution) for e in examples]
        return single_call("reason", examples, prompts, task, llm, sampling)
