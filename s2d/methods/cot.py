"""Zero-shot chain-of-thought: reason step by step, then a fixed "Final answer:" line (paper Fig. 10)."""

from __future__ import annotations

from s2d.methods.base import fewshot_messages, single_call, with_prompts
from s2d.tasks.base import WorkedSolutions, require

# Our paraphrase of the paper's Fig. 10 instruction, placed after the task's question.
INSTRUCTION = (
    "Work through the problem step by step. When you are done, write the result on its own last line "
    'as "Final answer: <your answer>".'
)


class CoT:
    """`prompts.instruction` follows the task's question; `instruction` (the organism's argument) replaces it too."""

    name = "cot"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS = {"instruction": INSTRUCTION}

    def __init__(self, instruction: str | None = None, prompts: dict | None = None):
        self.prompts = with_prompts("method", self.PROMPTS, {**(prompts or {}), **({"instruction": instruction}
                                                                                   if instruction else {})})

    @property
    def instruction(self) -> str:
        return self.prompts["instruction"]

    def prompt(self, task, example) -> str:
        return f"{task.prompt(example)}\n\n{self.instruction}"

    def run(self, examples, task, llm, sampling):
        prompts = [self.prompt(task, e) for e in examples]
        return single_call("reason", examples, prompts, task, llm, sampling)

    def lessons(self, task, example) -> list[tuple[str, str, str]]:
        """The one call with the task's code-written worked solution (the model organism learns from it)."""
        task = require(task, WorkedSolutions, f"method=cot learns from worked solutions, which task '{task.name}' "
                                              "does not have")
        return [("reason", self.prompt(task, example), task.solution(example))]


class CoTFewShot:
    """Few-shot chain-of-thought: `shots` worked solutions from the train split, then the question (no text of its own)."""

    name = "cot_fewshot"
    min_new_tokens = 16  # config check: a smaller max_new_tokens cannot hold this method's format
    PROMPTS: dict[str, str] = {}

    def __init__(self, shots: int = 8, seed: int = 0, prompts: dict | None = None):
        self.shots = shots
        self.seed = seed  # which solutions are shown (data_seed), not sampling
        self.prompts = with_prompts("method", self.PROMPTS, prompts)

    def run(self, examples, task, llm, sampling):
        task = require(task, WorkedSolutions, f"method=cot_fewshot needs worked solutions, which task "
                                              f"'{task.name}' does not have; use method=cot")
        prompts = [fewshot_messages(task, e, self.shots, self.seed, task.solution) for e in examples]
        return single_call("reason", examples, prompts, task, llm, sampling)
