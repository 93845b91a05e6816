"""Coin-flip reasoning (RaR task; paper Table 1): is the coin still heads up after people flip it or not?"""

from __future__ import annotations

import re
from typing import Any

from s2d.tasks.base import SplitTask, answer_segment, builtin_names, load_records, resolve_data_path, synthetic_split, require_field, take
from s2d.types import Example

_YESNO = re.compile(r"\b(yes|no)\b", re.I)
_MOVE = re.compile(r"([A-Z][\w'-]*(?: [A-Z][\w'-]*)*) (flips|does not flip) the coin")


def moves_of(question: str) -> list[tuple[str, bool]]:
    """(person, flips) for each person of a coin-flip question, in order."""
    moves = [(m.group(1), m.group(2) == "flips") for m in _MOVE.finditer(question)]
    if not moves:
        raise ValueError(f"coin-flip question without 'X flips the coin' / 'X does not flip the coin': {question!r}")
    return moves


class CoinFlip(SplitTask):
    """Seeded synthetic items with `n_people` people (paper: 2); eval can come from RaR's `coin_val.json`."""

    name = "coin_flip"
    train_only_keys = ("n_train",)  # the eval items are the first n_eval drawn, whatever n_train is
    version = 1  # bump when prompts or answer extraction change: cached stages are then redone
    rephrase_note = "Keep every detail of the original question."
    respond_suffix = "Answer the Yes or No question."

    def __init__(
        self,
        n_people: int = 2,
        n_train: int = 200,
        n_eval: int = 200,
        seed: int = 0,
        eval_path: str | None = None,
        data_dir: str | None = None,
    ):
        self.n_people = n_people
        self.n_train = n_train
        self.n_eval = n_eval
        self.seed = seed
        self.eval_path = eval_path
        self.data_dir = data_dir
        self._split: tuple[list[Example], list[Example]] | None = None

    def _items(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            names = builtin_names()

            def draw(rng, id_):
                people = rng.sample(names, self.n_people)
                return self.make(id_, people, [rng.random() < 0.5 for _ in people])

            self._split = synthetic_split(draw, self.n_train, self.n_eval, self.seed,
                                          self._load_eval if self.eval_path else None)
        return self._split

    @staticmethod
    def make(id_: str, people: list[str], flips: list[bool]) -> Example:
        steps = " ".join(f"{p} flips the coin." if f else f"{p} does not flip the coin." for p, f in zip(people, flips))
        text = f"A coin is heads up. {steps} Is the coin still heads up?"
        return Example(id=id_, input=text, gold="no" if sum(flips) % 2 else "yes")

    def _load_eval(self) -> list[Example]:
        path = resolve_data_path(self.eval_path, self.data_dir, "task.eval_path")
        rows = take(load_records(path), self.n_eval, str(path), "task.n_eval")
        out = []
        for i, r in enumerate(rows):
            # coin_val.json rows hold " Q: <question> " and "targets"; the RaR *_gpt-4.json rows hold question/answer.
            where = f"{path} record {i + 1}"
            text = str(require_field(r, "question", where, "inputs")).strip().removeprefix("Q:").strip()
            gold = str(require_field(r, "answer", where, "targets")).strip().lower()
            out.append(Example(id=f"file-{i}", input=" ".join(text.split()), gold=gold, meta={"source": str(path)}))
        return out

    def extract(self, text: str) -> str | None:
        seg = answer_segment(text)
        for part in (seg, text):
            if part:
                m = _YESNO.search(part)
                if m:
                    return m.group(1).lower()
        return None

    def score(self, answer: str | None, example: Example) -> bool:
        return answer is not None and answer == example.gold

    def format_answer(self, answer: str) -> str:
        return f"The answer is {answer}."

    def solution(self, example: Example) -> str:
        """A worked trace written by code: the coin's side after each person, then the answer."""
        lines, heads = ["The coin starts heads up."], True
        for person, flips in moves_of(example.input):
            heads ^= flips
            side = "heads" if heads else "tails"
            lines.append(f"{person} flips it: now {side} up." if flips else f"{person} does not flip it: still {side} up.")
        lines.append(f"The coin ends {'heads up, so yes' if heads else 'tails up, so no'}.")
        return "\n".join([*lines, f"Final answer: {'yes' if heads else 'no'}"])

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_people": self.n_people, "n_train": self.n_train, "n_eval": self.n_eval,
                "seed": self.seed, "eval_path": self.eval_path}
