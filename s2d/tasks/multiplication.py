"""Multi-digit multiplication: a task whose answer needs carried intermediate results (the GSM8k analogue
of the CPU model organism; see experiments/organism)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2d.tasks.base import SplitTask, synthetic_split
from s2d.tasks.gsm8k import extract_number
from s2d.types import Example

QUESTION = "What is {a} times {b}?"


class Multiplication(SplitTask):
    """Seeded products of a `digits_a`-digit and a `digits_b`-digit number."""

    name = "multiplication"
    train_only_keys = ("n_train",)  # the eval items are the first n_eval drawn, whatever n_train is
    version = 1  # bump when prompts or solutions change: cached stages are then redone
    grader_version = 3  # the GSM8k number rule (s2d/tasks/gsm8k.py extract_number), whose version it follows
    rephrase_note = "Keep both numbers exactly as they are."
    respond_suffix = "Give the product as a number."

    def __init__(self, digits_a: int = 2, digits_b: int = 2, n_train: int = 200, n_eval: int = 200, seed: int = 0):
        if digits_a < 1 or digits_b < 1:
            raise ValueError(f"task.digits_a and task.digits_b must be >= 1, got {digits_a} and {digits_b}")
        self.digits_a = digits_a
        self.digits_b = digits_b
        self.n_train = n_train
        self.n_eval = n_eval
        self.seed = seed
        space = 9 * 10 ** (digits_a - 1) * 9 * 10 ** (digits_b - 1)
        if n_train + n_eval > space:
            raise ValueError(f"task.n_train + task.n_eval = {n_train + n_eval} exceeds the {space} distinct "
                             f"{digits_a}×{digits_b}-digit products; lower them or raise the digits")
        self._split: tuple[list[Example], list[Example]] | None = None

    def _items(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            def number(rng, digits):
                return rng.randrange(10 ** (digits - 1), 10**digits)

            self._split = synthetic_split(
                lambda rng, id_: self.make(id_, number(rng, self.digits_a), number(rng, self.digits_b)),
                self.n_train, self.n_eval, self.seed)
        return self._split

    @staticmethod
    def make(id_: str, a: int, b: int) -> Example:
        return Example(id=id_, input=QUESTION.format(a=a, b=b), gold=str(a * b), meta={"a": a, "b": b})

    def extract(self, text: str, truncated: bool = False) -> str | None:
        return extract_number(text, truncated)

    def score(self, answer: str | None, example: Example) -> bool:
        return answer is not None and answer == example.gold

    def format_answer(self, answer: str) -> str:
        return f"The answer is {answer}."

    def solution(self, example: Example) -> str:
        """A worked trace written by code: one partial product per digit of the second factor (highest
        first), each as the sum of the first factor's digit products, then the sum of the partial products."""
        a, b = example.meta["a"], example.meta["b"]
        parts = [int(d) * 10**i for i, d in reversed(list(enumerate(reversed(str(b))))) if d != "0"]
        lines = [f"{a} × {b} = " + " + ".join(f"{a} × {p}" for p in parts) + "."] if len(parts) > 1 else []
        for p in parts:
            pieces = [int(d) * 10**i for i, d in reversed(list(enumerate(reversed(str(a))))) if d != "0"]
            if len(pieces) > 1:
                lines.append(f"{a} × {p} = " + " + ".join(f"{x} × {p}" for x in pieces) + " = "
                             + " + ".join(str(x * p) for x in pieces) + f" = {a * p}.")
            else:
                lines.append(f"{a} × {p} = {a * p}.")
        if len(parts) > 1:
            lines.append(" + ".join(str(a * p) for p in parts) + f" = {a * b}.")
        return "\n".join([*lines, f"Final answer: {a * b}"])

    def data_files(self) -> dict[str, Path]:
        return {}  # items are drawn by seeded code

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "digits_a": self.digits_a, "digits_b": self.digits_b, "n_train": self.n_train,
                "n_eval": self.n_eval, "seed": self.seed}
