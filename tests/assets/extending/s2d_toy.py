"""A method and a task added from outside s2d: one module (this file) + one YAML each (conf/), nothing else.

Self-Refine (Madaan et al., 2023) as a three-call program: draft an answer, critique it, refine it. The toy
task asks for the sum of two small numbers. docs/extending.md walks through writing both.
"""

from __future__ import annotations

import random
from pathlib import Path

from s2d.methods.base import chain, with_prompts
from s2d.tasks.gsm8k import extract_number
from s2d.types import Example

PROMPTS = {
    "draft": "{question}\n\nAnswer, ending with \"Final answer: <number>\".",
    "critique": "Question: {question}\nProposed answer: {draft}\n\nCheck the proposed answer step by step and say "
                "what, if anything, is wrong with it.",
    "refine": "Question: {question}\nProposed answer: {draft}\nReview: {critique}\n\nWrite the corrected answer, "
              "ending with \"Final answer: <number>\".",
}


class SelfRefine:
    name = "self_refine"
    min_new_tokens = 8

    def __init__(self, prompts: dict | None = None):
        self.prompts = with_prompts("method", PROMPTS, prompts)

    def run(self, examples, task, llm, sampling):
        drafts = [self.prompts["draft"].format(question=task.prompt(e)) for e in examples]

        def critique(ex, replies):
            return self.prompts["critique"].format(question=task.prompt(ex), draft=replies[0]), False

        def refine(ex, replies):
            return self.prompts["refine"].format(question=task.prompt(ex), draft=replies[0],
                                                 critique=replies[1]), False

        return chain(("draft", "critique", "refine"), examples, drafts, task, llm, sampling, critique, refine)


class Addition:
    name = "addition"
    version = 1
    grader_version = 1
    train_only_keys = ("n_train",)
    rephrase_note = "Keep both numbers."
    respond_suffix = ""

    def __init__(self, n_train: int = 8, n_eval: int = 4, seed: int = 0):
        self.n_train, self.n_eval, self.seed = n_train, n_eval, seed

    def _items(self, offset: int, n: int, split: str) -> list[Example]:
        rng = random.Random(f"{self.seed}-{split}")
        pairs = [(rng.randrange(10, 50), rng.randrange(10, 50)) for _ in range(n)]
        return [Example(f"{split}-{i}", f"What is {a} plus {b}?", None if split == "train" else str(a + b))
                for i, (a, b) in enumerate(pairs)]

    def train_examples(self):
        return self._items(0, self.n_train, "train")

    def eval_examples(self):
        return self._items(0, self.n_eval, "eval")

    def prompt(self, example):
        return example.input

    def extract(self, text, truncated=False):
        return extract_number(text, truncated)

    def score(self, answer, example):
        return answer is not None and answer == example.gold

    def format_answer(self, answer):
        return f"Final answer: {answer}"

    def data_files(self) -> dict[str, Path]:
        return {}

    def identity(self):
        return {"name": self.name, "n_train": self.n_train, "n_eval": self.n_eval, "seed": self.seed}
