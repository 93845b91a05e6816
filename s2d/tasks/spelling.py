"""Last-letter tasks of the CPU model organism (docs/organism.md).

`Spelling` is a skill the organism learns before the loop runs: spelling single census names out (and
worked two-name last-letter solutions), drawn only from names outside a last-letter eval pool, so the
organism's own training never sees an eval word. `LastLetterLetterwise` is the loop's last-letter task with
System 1's answer written letter by letter ("e-y"): joined, "ey" is one token of the embedded model's
vocabulary, so a direct answer would have to pick one of ~700 two-letter tokens from two words at once.
"""

from __future__ import annotations

import random
from typing import Any

from s2d.tasks.base import SplitTask, census_names
from s2d.tasks.last_letter import LastLetter, words_of
from s2d.types import Example

SPELL = 'Spell the name "{word}" letter by letter and say its last letter.'


class LastLetterLetterwise(LastLetter):
    """The last-letter task (same items, prompts and grader) whose System 1 answer format separates the
    letters with hyphens: the distillation target is 'The answer is "e-y".', one token per letter."""

    def format_answer(self, answer: str) -> str:
        return f'The answer is "{"-".join(answer)}".'

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "answer_format": "letterwise"}


def eval_words(n_words: int, n_eval: int, seed: int) -> set[str]:
    """The words (lower case) of the last-letter eval split with these settings: the pool to keep out."""
    task = LastLetter(n_words=n_words, n_train=0, n_eval=n_eval, seed=seed)
    return {w.lower() for e in task.eval_examples() for w in words_of(e.input)}


class Spelling(SplitTask):
    """Organism training items: `n_spell` single names spelled out, then `n_pairs` two-name last-letter
    questions (answered by worked solutions, or replayed), all from census names outside the eval pool of
    `LastLetter(n_words, n_eval=exclude_n_eval, seed=exclude_seed)` — for any loop with n_eval up to that."""

    name = "spelling"
    version = 1  # bump when items or solutions change: the organism is then rebuilt
    grader_version = 2  # the last-letter grader (LastLetter.extract): 2 follows its version 4
    rephrase_note = "Keep the words unchanged."
    respond_suffix = ""

    def __init__(self, n_spell: int = 1000, n_pairs: int = 200, n_words: int = 2, seed: int = 0,
                 exclude_seed: int = 0, exclude_n_eval: int = 200, n_eval: int = 0):
        if n_eval:
            raise ValueError("spelling is an organism training task: it has no eval split (task.n_eval=0)")
        self.n_spell = n_spell
        self.n_pairs = n_pairs
        self.n_words = n_words
        self.seed = seed
        self.exclude_seed = exclude_seed
        self.exclude_n_eval = exclude_n_eval
        self.n_train = n_spell + n_pairs
        self.n_eval = 0
        self._split: tuple[list[Example], list[Example]] | None = None
        self._last_letter = LastLetter(n_words=n_words, n_train=0, n_eval=0)  # its parser and worked solutions

    def allowed_words(self) -> list[str]:
        """Census names that are not in the excluded eval pool, shuffled with `seed`."""
        banned = eval_words(self.n_words, self.exclude_n_eval, self.exclude_seed)
        words = [w for w in census_names() if w.lower() not in banned]
        random.Random(self.seed).shuffle(words)
        return words

    def _items(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            words = self.allowed_words()
            if self.n_spell > len(words):
                raise ValueError(f"task.n_spell={self.n_spell} exceeds the {len(words)} census names outside the "
                                 "eval pool; lower it")
            spells = [Example(id=f"spell-{i}", input=SPELL.format(word=w), gold=w[-1].lower(), meta={"word": w})
                      for i, w in enumerate(words[:self.n_spell])]
            rng, pairs, seen = random.Random(self.seed + 1), [], set()
            while len(pairs) < self.n_pairs:
                ex = LastLetter.make(f"pair-{len(pairs)}", rng.sample(words, self.n_words))
                if ex.input not in seen:
                    seen.add(ex.input)
                    pairs.append(ex)
            # pairs last: the organism replays the System 1 prompt of the last `replay_per_task` items
            self._split = spells + pairs, []
        return self._split

    def words(self) -> set[str]:
        """Every word of every item (lower case), for the disjointness checks."""
        out = set()
        for e in self.train_examples():
            out |= {e.meta["word"].lower()} if "word" in e.meta else {w.lower() for w in words_of(e.input)}
        return out

    def extract(self, text: str, truncated: bool = False) -> str | None:
        return self._last_letter.extract(text, truncated)

    def score(self, answer: str | None, example: Example) -> bool:
        return answer is not None and answer == example.gold

    def format_answer(self, answer: str) -> str:
        return f'The answer is "{answer}".'

    def solution(self, example: Example) -> str:
        """A spelled name with its last letter, or the two-name worked solution of the last-letter task."""
        if "word" not in example.meta:
            return self._last_letter.solution(example)
        w = example.meta["word"]
        return f"{w}: {'-'.join(w)}, last letter {w[-1].lower()}.\nFinal answer: {w[-1].lower()}"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_spell": self.n_spell, "n_pairs": self.n_pairs, "n_words": self.n_words,
                "seed": self.seed, "exclude_seed": self.exclude_seed, "exclude_n_eval": self.exclude_n_eval}

