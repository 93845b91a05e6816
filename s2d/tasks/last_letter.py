"""Last-letter concatenation (RaR task; paper Table 1): join the last letters of a few words."""

from __future__ import annotations

import re
from typing import Any

from s2d.tasks.base import SplitTask, answer_segment, builtin_names, load_records, quoted, resolve_data_path, synthetic_split, require_field, take
from s2d.types import Example

QUESTION = 'Take the last letters of the words in "{words}" and concatenate them.'


def words_of(question: str) -> list[str]:
    """The words of a last-letter question (the quoted part of "... words in "A B" and ...")."""
    q = quoted(question)
    if not q:
        raise ValueError(f"last-letter question without quoted words: {question!r}")
    return q[0].split()


class LastLetter(SplitTask):
    """Seeded synthetic items from a name list; the eval split can instead come from the RaR authors' file."""

    name = "last_letter"
    train_only_keys = ("n_train",)  # the eval items are the first n_eval drawn, whatever n_train is
    version = 1  # bump when prompts or answer extraction change: cached stages are then redone
    respond_suffix = ""

    def __init__(
        self,
        n_words: int = 2,
        n_train: int = 200,
        n_eval: int = 200,
        seed: int = 0,
        eval_path: str | None = None,
        data_dir: str | None = None,
    ):
        self.n_words = n_words
        self.n_train = n_train
        self.n_eval = n_eval
        self.seed = seed
        self.eval_path = eval_path
        self.data_dir = data_dir
        self.rephrase_note = f"Keep the {n_words} words separate and unchanged in the revised question."
        self._split: tuple[list[Example], list[Example]] | None = None

    def _items(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            names = builtin_names()
            self._split = synthetic_split(lambda rng, id_: self.make(id_, rng.sample(names, self.n_words)),
                                          self.n_train, self.n_eval, self.seed,
                                          self._load_eval if self.eval_path else None)
        return self._split

    def _load_eval(self) -> list[Example]:
        path = resolve_data_path(self.eval_path, self.data_dir, "task.eval_path")
        rows = take(load_records(path), self.n_eval, str(path), "task.n_eval")
        return [
            Example(id=f"file-{i}", input=require_field(r, "question", f"{path} record {i + 1}"),
                    gold=str(require_field(r, "answer", f"{path} record {i + 1}")).strip().lower(),
                    meta={"source": str(path)})
            for i, r in enumerate(rows)
        ]

    @staticmethod
    def make(id_: str, words: list[str]) -> Example:
        return Example(id=id_, input=QUESTION.format(words=" ".join(words)), gold="".join(w[-1] for w in words).lower())

    def extract(self, text: str) -> str | None:
        seg = answer_segment(text)
        if seg is not None:
            q = quoted(seg)
            cand = q[-1] if q else (re.findall(r"[A-Za-z]+", seg) or [None])[0]
        else:
            q = [s for s in quoted(text) if re.fullmatch(r"[A-Za-z]+", s.strip())]
            cand = q[-1] if q else None
        if cand is None:
            return None
        letters = re.sub(r"[^a-z]", "", cand.lower())
        return letters or None

    def score(self, answer: str | None, example: Example) -> bool:
        return answer is not None and answer == example.gold

    def format_answer(self, answer: str) -> str:
        return f'The answer is "{answer}".'

    def solution(self, example: Example) -> str:
        """A worked trace written by code: each word spelled out with its last letter, then the joined letters."""
        words = words_of(example.input)
        lines = [f"{w}: {'-'.join(w)}, last letter {w[-1].lower()}." for w in words]
        joined = "".join(w[-1] for w in words).lower()
        return "\n".join([*lines, f"Joined: {joined}.", f"Final answer: {joined}"])

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_words": self.n_words, "n_train": self.n_train, "n_eval": self.n_eval,
                "seed": self.seed, "eval_path": self.eval_path}
