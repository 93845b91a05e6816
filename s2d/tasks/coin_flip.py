"""Coin-flip reasoning (RaR task; paper Table 1): is the coin still heads up after people flip it or not?"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from s2d.tasks.base import SplitTask, builtin_names, found_files, load_records, resolve_data_path, synthetic_split, require_field, take
from s2d.tasks.grading import committed_text, final_segment, last_sentence, one_of
from s2d.types import Example

# "no" as an answer, not as a determiner or adverb ("No one flips", "no longer heads up").
_YESNO = re.compile(r"\b(yes|no)\b(?!\s+(?:one|longer|matter|more|doubt|body|person|change|flip|way|coin|idea)\b)", re.I)
# The question asks whether the coin is still heads up; a reply may say so without yes or no. A side said
# under a negation ("not heads up", "no longer be heads up", "I don't think it's heads up", "it is not the case
# that the coin is heads up") means the other side; the negation may stand a few filler words before it.
_FILLER = (r"(?:be|been|still|the|case|that|think|believe|say|it|it's|it’s|its|is|coin|would|will|remain|remains|"
           r"stay|stays|land|lands|landed|end|ends|up|show|shows|showing|on|face|faces|facing|anymore|any|longer|"
           r"currently|going|to|actually|really|necessarily)")
_SIDE = re.compile(rf"(?:\b(not|never|no\s+longer)\s+|n['’]t\s+)?(?:{_FILLER}\s+){{0,7}}?\b(heads|tails)(?:\s+up)?\b",
                   re.I)
# Words that hedge: a reply that holds one is never credited through the first-word fallback.
_HEDGE = re.compile(r"\b(?:maybe|might|perhaps|possibly|probably|not\s+sure|unsure|could\s+be|either(?!\s+way))\b", re.I)
_MOVE = re.compile(r"([A-Z][\w'-]*(?: [A-Z][\w'-]*)*) (flips|does not flip) the coin")


def moves_of(question: str) -> list[tuple[str, bool]]:
    """(person, flips) for each person of a coin-flip question, in order."""
    moves = [(m.group(1), m.group(2) == "flips") for m in _MOVE.finditer(question)]
    if not moves:
        raise ValueError(f"coin-flip question without 'X flips the coin' / 'X does not flip the coin': {question!r}")
    return moves


def verdict_in(segment: str) -> str | None:
    """yes/no in a piece of text: its yes/no words, else what it says of the coin's side ("still heads
    up" → yes, "tails up" → no, "no longer heads up" → no); both answers at once → None."""
    words = [m.group(1).lower() for m in _YESNO.finditer(segment)]
    if words:
        return one_of(words)
    sides = [("yes" if m.group(2).lower() == "heads" else "no") if not negated(m) else
             ("no" if m.group(2).lower() == "heads" else "yes") for m in _SIDE.finditer(segment)]
    return one_of(sides) if sides else None


def negated(side: re.Match) -> bool:
    return side.group(1) is not None or side.group(0).lower().startswith(("n't", "n’t"))


def says_a_side(text: str) -> bool:
    """Whether the text holds yes/no or a side of the coin at all (an answer, or a hedge between two)."""
    return bool(_YESNO.search(text) or _SIDE.search(text))


class CoinFlip(SplitTask):
    """Seeded synthetic items with `n_people` people (paper: 2); eval can come from RaR's `coin_val.json`."""

    name = "coin_flip"
    train_only_keys = ("n_train",)  # the eval items are the first n_eval drawn, whatever n_train is
    version = 1  # bump when prompts or items change: cached stages are then redone
    grader_version = 3  # 2: the last answer marker counts, hedges unparsed, "no one" is not "no"; 3: a negated
    # side ("no longer heads up", "I don't think it's heads up") is the other side, no first-word credit for a
    # hedge, check steps and invented turns skipped
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

    def split_stats(self) -> dict[str, int]:
        """Inputs in both splits (0: drawn unique, and with an eval file its items are dropped from train)."""
        train, eval_ = self._items()
        norm = lambda e: " ".join(e.input.lower().split())  # noqa: E731  (the rule `drop_overlap` uses)
        return {"overlap_items": len({norm(e) for e in train} & {norm(e) for e in eval_}),
                "train_dropped_as_eval": self.n_train - len(train)}

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

    def extract(self, text: str, truncated: bool = False) -> str | None:
        """yes/no of the last answer marker's segment; with no marker, the reply's last sentence, else its
        first word when the last sentence says nothing of the coin and the reply holds no hedge ("maybe",
        "might", "not sure"). Both yes and no in the committed part, or a hedge word there ("probably yes") →
        None; see s2d/tasks/grading.py."""
        text = committed_text(text, truncated)
        seg = final_segment(text)
        if seg is not None:
            return None if _HEDGE.search(seg) else verdict_in(seg)
        if truncated:
            return None
        tail = last_sentence(text)
        last = None if _HEDGE.search(tail) else verdict_in(tail)
        if last is not None or says_a_side(tail) or _HEDGE.search(text):
            return last  # a last sentence that hedges ("Yes and no.") is never credited through the first word
        first = _YESNO.match(text.lstrip(" *\"'"))
        return first.group(1).lower() if first else None

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

    def data_files(self) -> dict[str, Path]:
        return found_files(self.data_dir, eval_path=self.eval_path)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_people": self.n_people, "n_train": self.n_train, "n_eval": self.n_eval,
                "seed": self.seed, "eval_path": self.eval_path}
