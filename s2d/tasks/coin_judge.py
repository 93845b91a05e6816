"""Judging coin-flip replies (the BSM organism's task, docs/organism.md): a pairwise judge task whose gold is known.

Each pair is a coin-flip question and two replies written by code that reason to an answer: one right and
one wrong (the wrong one makes exactly one wrong step and follows it to the wrong answer), or both right (a
tie, gold C). Every pair is judged in both orders (`pair_examples`), so agreement and % inconsistent are
measured as on OASST2. The task also writes, per pair, what a careful judge finds (`rubric`): the organism
learns Branch-Solve-Merge's calls from it on its own pairs, never on the loop's.
"""

from __future__ import annotations

import random
from typing import Any

from s2d.tasks.coin_flip import CoinFlip, moves_of
from s2d.tasks.judge import PairTask, pair_examples
from s2d.types import Example

# The criteria a judge of a coin-flip reply should use (what BSM's branch call is taught to list).
CRITERIA = ("Correct answer: does the reply end with the right yes or no",
            "Sound steps: does every step keep track of the coin's side correctly")


def _side(heads: bool) -> str:
    return "heads" if heads else "tails"


def walk_reply(moves: list[tuple[str, bool]], wrong_at: int | None, variant: int) -> tuple[str, str | None]:
    """A reply that follows the coin person by person; with `wrong_at`, that person's step is wrong (a flip
    that leaves the side, or a non-flip that turns it) and the rest follows from it. (text, wrong sentence)."""
    sentences = ["The coin starts heads up." if variant == 0 else "At first the coin is heads up."]
    heads, wrong = True, None
    for i, (person, flips) in enumerate(moves):
        turned = flips != (i == wrong_at)
        heads ^= turned
        verb = "flips it" if flips else "does not flip it"
        s = f"{person} {verb}, so it is now {_side(heads)} up." if turned else \
            f"{person} {verb}, so it stays {_side(heads)} up."
        sentences.append(s)
        if i == wrong_at:
            wrong = s
    answer = "yes" if heads else "no"
    sentences.append(f"So the answer is {answer}." if variant == 0 else
                     f"{answer.capitalize()}, it is {'still' if heads else 'not still'} heads up.")
    return " ".join(sentences), wrong


def count_reply(moves: list[tuple[str, bool]], miscount: int, variant: int) -> tuple[str, str | None]:
    """A reply that counts the flips; `miscount` (0: none) is added to the count, and the parity follows it."""
    acts = [f"{p} flips it" if f else f"{p} does not flip it" for p, f in moves]
    first = (", ".join(acts[:-1]) + " and " + acts[-1]) if len(acts) > 1 else acts[0]
    k = sum(f for _, f in moves) + miscount
    count = f"That makes {k} flip{'s' if k != 1 else ''} in all."
    heads = k % 2 == 0
    answer = "yes" if heads else "no"
    close = (f"An {'even' if heads else 'odd'} number of flips leaves it {_side(heads)} up, so the answer is {answer}."
             if variant == 0 else f"After {k} flip{'s' if k != 1 else ''} it is {_side(heads)} up: {answer}.")
    return f"{first}. {count} {close}", (count if miscount else None)


class CoinFlipJudge(PairTask):
    """`n_train` unlabeled and `n_eval` labeled pairs of replies to coin-flip questions (questions drawn as
    `task=coin_flip` draws them, eval first), each in both orders; `tie_share` of pairs have two right replies."""

    name = "coin_judge"
    version = 1  # bump when the replies or how pairs are built change: cached stages are then redone
    train_only_keys = ("n_train",)  # eval pairs are the first n_eval questions drawn, whatever n_train is

    def __init__(self, n_train: int = 64, n_eval: int = 50, n_people: int = 2, tie_share: float = 0.25,
                 seed: int = 0, data_dir: str | None = None):
        if not 0 <= tie_share <= 1:
            raise ValueError(f"task.tie_share={tie_share}: must be between 0 and 1")
        self.n_train, self.n_eval, self.n_people, self.tie_share = n_train, n_eval, n_people, tie_share
        self.seed, self.data_dir = seed, data_dir
        self._split: tuple[list[Example], list[Example]] | None = None

    def _pairs(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            questions = CoinFlip(n_people=self.n_people, n_train=self.n_train, n_eval=self.n_eval, seed=self.seed)

            def pairs(items, split):
                # Each pair's replies come from a stream of (seed, question): a pair does not depend on n_train.
                return [x for e in items for x in self.pair(e, random.Random(f"{self.seed}:{e.input}"), split)]

            self._split = pairs(questions.train_examples(), "train"), pairs(questions.eval_examples(), "eval")
        return self._split

    def pair(self, question: Example, rng: random.Random, split: str) -> list[Example]:
        """Both orders of one pair of replies to `question` (gold only on eval)."""
        moves = moves_of(question.input)
        tie = rng.random() < self.tie_share

        def reply(right: bool):
            style, variant = rng.choice(("walk", "count")), rng.randrange(2)
            if style == "walk":
                return walk_reply(moves, None if right else rng.randrange(len(moves)), variant)
            return count_reply(moves, 0 if right else rng.choice((-1, 1)) if sum(f for _, f in moves) else 1, variant)

        good, other = reply(True), reply(tie)
        while other[0] == good[0]:  # two right replies that read the same would be a give-away tie
            other = reply(True)
        first, second = (good, other) if rng.random() < 0.5 else (other, good)
        gold = "C" if tie else ("A" if first is good else "B")
        pid = f"{split}-{question.id}"
        out = []
        for e in pair_examples(pid, question.input, first[0], second[0], gold, None, 0):
            a, b = (first, second) if e.meta["order"] == "ab" else (second, first)
            meta = {**e.meta, "question": question.input, "answer": question.gold,
                    "wrong_a": a[1], "wrong_b": b[1]}
            out.append(Example(e.id, e.input, e.gold if split == "eval" else None, meta))
        return out

    def train_examples(self) -> list[Example]:
        return self._pairs()[0]

    def eval_examples(self) -> list[Example]:
        return self._pairs()[1]

    def rubric(self, example: Example) -> list[tuple[str, str, int, int]]:
        """What a careful judge finds, per criterion: (criterion, code-written check of both replies, score of
        A, score of B). The answer is worked out step by step as `task=coin_flip`'s solution does."""
        m = example.meta
        steps = CoinFlip().solution(Example(example.id, m["question"], m["answer"])).splitlines()[:-2]
        right = m["answer"]
        said = {x: (right if m[f"wrong_{x}"] is None else {"yes": "no", "no": "yes"}[right]) for x in "ab"}
        check = " ".join(steps) + f" So the right answer is {right}.\n" + " ".join(
            f"Assistant {x.upper()} answers {said[x]}, which is {'right' if said[x] == right else 'wrong'}."
            for x in "ab")
        sound = " ".join(f"Assistant {x.upper()}: every step is right." if m[f"wrong_{x}"] is None else
                         f"Assistant {x.upper()}: the step \"{m[f'wrong_{x}']}\" is wrong." for x in "ab")
        return [(CRITERIA[0], check, *(5 if said[x] == right else 1 for x in "ab")),
                (CRITERIA[1], sound, *(5 if m[f"wrong_{x}"] is None else 2 for x in "ab"))]

    def split_stats(self) -> dict[str, int]:
        """Pairs per split, and how many of them are ties (two right replies)."""
        train, eval_ = self._pairs()
        out = {}
        for split, items in (("train", train), ("eval", eval_)):
            ab = [e for e in items if e.meta["order"] == "ab"]
            out[f"{split}_pairs"] = len(ab)
            out[f"{split}_ties"] = sum(e.meta["wrong_a"] is None and e.meta["wrong_b"] is None for e in ab)
        return out

    def data_files(self) -> dict:
        return {}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": self.n_train, "n_eval": self.n_eval, "n_people": self.n_people,
                "tie_share": self.tie_share, "seed": self.seed}
