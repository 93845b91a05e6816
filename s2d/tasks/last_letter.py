"""Last-letter concatenation (RaR task; paper Table 1): join the last letters of a few words."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from s2d.tasks.base import SplitTask, census_files, census_names, found_files, load_records, resolve_data_path, require_field, take
from s2d.tasks.grading import answer_clause, committed_text, final_segment, last_sentence, one_of, quoted, without_parentheticals
from s2d.types import Example

QUESTION = 'Take the last letters of the words in "{words}" and concatenate them.'


def words_of(question: str) -> list[str]:
    """The words of a last-letter question (the quoted part of "... words in "A B" and ...")."""
    q = quoted(question)
    if not q:
        raise ValueError(f"last-letter question without quoted words: {question!r}")
    return q[0].split()


# Words that lead into or join letters without being the answer ("the letters e and y").
_FILLER = {"the", "letters", "letter", "last", "and", "then", "plus", "concatenated", "joined", "together",
           "final", "answer", "is", "are", "they", "it", "its", "to", "get", "we", "so", "which", "gives",
           "make", "makes", "form", "forms", "spell", "spells", "word", "string", "result", "of", "be"}
# Words after which the answer follows ("the concatenation is ey", "e + y = ey", "which gives ey").
_POINTER = re.compile(r"=|→|->|\b(?:is|are|gives|giving|make|makes|making|spells|spelling|forms|forming|equals|be)\b", re.I)
_SPACED = re.compile(r"^\W*((?:[A-Za-z](?:\s*[-,+]\s*|\s+)){1,11}[A-Za-z])(?![A-Za-z])")
_LETTERS_ONLY = re.compile(r"[A-Za-z]+(?:[\s,+-]+[A-Za-z]+)*")


def _letters(candidate: str) -> str | None:
    """A candidate as a letter string: one word, or single letters spaced or joined by - , + ("e-y")."""
    tokens = re.findall(r"[A-Za-z]+", candidate)
    if len(tokens) == 1:
        return tokens[0].lower()
    if tokens and all(len(t) == 1 for t in tokens):
        return "".join(tokens).lower()
    return None


def quoted_letters(text: str) -> list[str]:
    """The letters-only quotations of a text, as letter strings."""
    q = [_letters(s) for s in quoted(text) if _LETTERS_ONLY.fullmatch(s.strip())]
    return [s for s in q if s]


def letters_in(segment: str) -> str | None:
    """The answer inside a marker's segment: spaced letters; else, in the clause before an explanation
    ("ye", formed from …), a letters-only quotation (of several, the one after the last pointer: '"y" + "e" =
    "ye"'), the word after the last pointer ("is", "=", "gives"), else the clause's one remaining word.
    Hedges ("ey or ye") → None."""
    seg = without_parentheticals(segment).strip()
    spaced = _SPACED.match(seg)
    if spaced and _letters(spaced.group(1)):
        return _letters(spaced.group(1))
    clause = answer_clause(seg)
    q = quoted_letters(clause)
    if len(set(q)) > 1:
        # pieces and their join ('"y" + "e" = "ye"'): the quotation after the last pointer, if only one
        pointers = list(_POINTER.finditer(clause))
        if pointers:
            q = quoted_letters(clause[pointers[-1].end():])
        elif all(len(x) == 1 for x in q):
            q = ["".join(q)]  # quoted single letters ('"e" "y"')
    if q:
        return one_of(q)
    pointers = list(_POINTER.finditer(clause))
    if pointers:
        clause = clause[pointers[-1].end():]
    words = re.findall(r"[A-Za-z]+", clause)
    if len(words) == 1:
        return words[0].lower()  # a lone word is the answer, even one that reads like a filler ("so", "it")
    if "or" in (w.lower() for w in words[1:-1]):
        return None  # "ey or ye": a hedge, not an answer
    content = [w for w in words if w.lower() not in _FILLER]
    if not content:
        return None
    if len(content) > 1 and all(len(w) == 1 for w in content):
        return "".join(content).lower()  # "the letters e and y"
    return content[-1].lower()


def bare_letters(text: str) -> str | None:
    """A reply with no marker: the whole reply as a letter string ("ey", "E Y."), else a letters-only
    quotation (the last one), else the word after a pointer in the last sentence ("... gives ey.")."""
    whole = text.strip().strip(".!\"'“”‘’*` ")
    if whole and len(whole) <= 24 and _LETTERS_ONLY.fullmatch(whole):
        got = _letters(whole)
        if got:
            return got
    q = [_letters(s) for s in quoted(text) if _LETTERS_ONLY.fullmatch(s.strip())]
    q = [s for s in q if s]
    if q:
        return q[-1]
    last = last_sentence(text)
    if _POINTER.search(last):
        return letters_in(last[list(_POINTER.finditer(last))[-1].end():])
    return None


class LastLetter(SplitTask):
    """Seeded synthetic items from the census first names; the eval split can instead come from the RaR file.

    As in the paper (1,200 unique words for 600 items), no word appears in both splits: the shuffled names
    are cut into an eval pool (each word used once) and a train pool; `split_stats()` reports the overlap.
    """

    name = "last_letter"
    train_only_keys = ("n_train",)  # the eval items are the first n_eval drawn, whatever n_train is
    version = 2  # 2: disjoint census word pools per split; bump when prompts or items change: cached stages are then redone
    grader_version = 4  # 2: the last answer marker counts, the answer inside it, hedges unparsed; 3: a lone
                        # word after the marker is the answer even when it reads like a filler ("so", "it");
                        # 4: quotations read before an explanation, check steps and invented turns skipped
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
            words = census_names()
            rng = random.Random(self.seed)
            rng.shuffle(words)
            if self.eval_path:
                eval_ = self._load_eval()
                taken = {w.lower() for e in eval_ for w in words_of(e.input)}
                pool = [w for w in words if w.lower() not in taken]
            else:
                # The eval pool is the first n_eval * n_words shuffled names whatever n_train is, so the
                # eval items stay fixed in a sweep over n_train (train_only_keys).
                k = self.n_eval * self.n_words
                if k > len(words):
                    raise ValueError(f"task.n_eval={self.n_eval} x task.n_words={self.n_words} needs {k} distinct "
                                     f"words; the census lists hold {len(words)}")
                eval_ = [self.make(f"synth-{i}", words[i * self.n_words:(i + 1) * self.n_words])
                         for i in range(self.n_eval)]
                pool = words[k:]
            self._split = self._train_items(pool, rng, len(eval_)), eval_
        return self._split

    def _train_items(self, pool: list[str], rng: random.Random, first_id: int) -> list[Example]:
        """Train items from the train pool: each word once while the pool lasts (2,381 two-word items beside
        200 eval items), then words drawn again at random, never an input twice."""
        if len(pool) < self.n_words:
            raise ValueError(f"last_letter: {len(pool)} words left for training; lower task.n_eval or task.n_words")
        n = self.n_words
        items = [self.make(f"synth-{first_id + i}", pool[i * n:(i + 1) * n])
                 for i in range(min(self.n_train, len(pool) // n))]
        seen = {e.input for e in items}
        while len(items) < self.n_train:
            ex = self.make(f"synth-{first_id + len(items)}", rng.sample(pool, n))
            if ex.input not in seen:
                seen.add(ex.input)
                items.append(ex)
        return items

    def split_stats(self) -> dict[str, int]:
        """Words shared by the train and eval items (0 by construction) and distinct words per split."""
        train, eval_ = self._items()
        tw = {w.lower() for e in train for w in words_of(e.input)}
        ew = {w.lower() for e in eval_ for w in words_of(e.input)}
        return {"overlap_words": len(tw & ew), "train_words": len(tw), "eval_words": len(ew),
                "overlap_items": len({e.input for e in train} & {e.input for e in eval_})}

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

    def extract(self, text: str, truncated: bool = False) -> str | None:
        """The letter string the reply commits to: inside the last answer marker's segment, else a bare
        reply ("ey", "e y") or a letters-only quotation; see s2d/tasks/grading.py."""
        text = committed_text(text, truncated)
        seg = final_segment(text)
        if seg is not None:
            return letters_in(seg)
        if truncated:
            return None
        return bare_letters(text)

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

    def data_files(self) -> dict[str, Path]:
        return {**census_files(), **found_files(self.data_dir, eval_path=self.eval_path)}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_words": self.n_words, "n_train": self.n_train, "n_eval": self.n_eval,
                "seed": self.seed, "eval_path": self.eval_path}
