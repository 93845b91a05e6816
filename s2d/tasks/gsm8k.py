"""GSM8k grade-school math (paper Table 4): numeric answers, worked solutions in the train split."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from s2d.tasks.base import found_files, load_source, require_field, take
from s2d.tasks.grading import committed_text, final_segment, one_of, without_parentheticals
from s2d.types import Example

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\$?\.\d+")
_CALC = re.compile(r"<<[^>]*>>")
# A number the segment rules out ("not 5; it is 6", "instead of 5").
_NEGATED = re.compile(r"\b(?:not|isn't|is not|instead of|rather than)\s+(?:-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)", re.I)
_FIRST_SENTENCE = re.compile(r"\.(?:\s|$)")


def parse_number(text: str) -> str | None:
    """Canonical form of one number as written ("$1,200.50" → "1200.5", "3/4" → "0.75", "-7." → "-7")."""
    s = text.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value)).rstrip("0").rstrip(".")


def number_in(segment: str) -> str | None:
    """The number a marker's segment commits to: in its first sentence, parentheticals and ruled-out numbers
    ("not 5") dropped, the result after the last "=" of a worked line; two different numbers joined by
    "or" are a hedge (None)."""
    sentence = _FIRST_SENTENCE.split(without_parentheticals(segment.replace("−", "-")), maxsplit=1)[0]
    sentence = _NEGATED.sub(" ", sentence).rpartition("=")[2]
    found = [parse_number(n) for n in _NUMBER.findall(sentence)]
    found = [n for n in found if n is not None]
    if not found:
        return None
    if re.search(r"\d[^\d]*\bor\b[^\d]*\d", sentence) and one_of(found) is None:
        return None
    return found[0]


def extract_number(text: str, truncated: bool = False) -> str | None:
    """The number after the last answer marker ("Final answer:", "the answer is", …); with no marker, the
    last number in the reply (the field's "flexible" rule). A reply cut at the token cap counts only
    through a finished marker line, never through its last number (an intermediate result)."""
    text = committed_text(text, truncated)
    seg = final_segment(text)
    if seg is not None:
        return number_in(seg)
    if truncated:
        return None
    found = _NUMBER.findall(text.replace("−", "-"))
    return parse_number(found[-1]) if found else None


class GSM8k:
    """Sources, in order: a file (as given, under paths.data_dir, or shipped with s2d), then the hub dataset at
    `revision` through `datasets`."""

    name = "gsm8k"
    train_only_keys = ("n_train",)  # the eval split is the first n_eval test problems, whatever n_train is
    version = 2  # bump when prompts or data loading change: cached stages are then redone
    grader_version = 2  # 2: the last answer marker counts, ruled-out numbers and hedges, cut replies
    rephrase_note = "Keep every number and detail of the original problem."
    respond_suffix = ""

    def __init__(
        self,
        n_train: int = 200,
        n_eval: int = 200,
        train_path: str | None = "gsm8k/train.jsonl",
        eval_path: str | None = "gsm8k/test.jsonl",
        hub_id: str | None = "openai/gsm8k",
        hub_config: str = "main",
        seed: int = 0,
        data_dir: str | None = None,
        revision: str | None = None,
    ):
        self.revision = revision
        self.n_train = n_train
        self.n_eval = n_eval
        self.train_path = train_path
        self.eval_path = eval_path
        self.hub_id = hub_id
        self.hub_config = hub_config
        self.seed = seed
        self.data_dir = data_dir
        self._cache: dict[str, list[Example]] = {}

    def _rows(self, split: str, path: str | None, key: str) -> list[dict]:
        return load_source(f"gsm8k {split} split", path, key, self.data_dir, self.hub_id,
                           hub_args=(self.hub_config,), hub_kwargs={"split": split}, revision=self.revision)[0]

    def data_files(self) -> dict[str, Path]:
        return found_files(self.data_dir, train_path=self.train_path, eval_path=self.eval_path)

    def _split(self, split: str) -> list[Example]:
        if split not in self._cache:
            path, key, n = ((self.train_path, "task.train_path", self.n_train) if split == "train"
                            else (self.eval_path, "task.eval_path", self.n_eval))
            rows = take(self._rows(split, path, key), n, f"gsm8k {split} split ({path or self.hub_id})",
                        "task.n_train" if split == "train" else "task.n_eval")
            out = []
            for i, r in enumerate(rows):
                where = f"gsm8k {split} split ({path or self.hub_id}) record {i + 1}"
                question, answer = require_field(r, "question", where), str(require_field(r, "answer", where))
                if "####" not in answer:
                    raise ValueError(f"{where}: the answer has no '#### <number>' final line")
                solution, _, final = answer.rpartition("####")
                out.append(Example(id=f"{split}-{i}", input=question.strip(), gold=parse_number(final),
                                   meta={"solution": _CALC.sub("", solution).strip()}))
            self._cache[split] = out
        return self._cache[split]

    def train_examples(self) -> list[Example]:
        return self._split("train")

    def eval_examples(self) -> list[Example]:
        return self._split("test")

    def fewshot_pool(self) -> list[Example]:
        """Worked examples for few-shot prompts: the train split, whose solutions are part of the dataset."""
        return self.train_examples()

    def prompt(self, example: Example) -> str:
        return example.input

    def extract(self, text: str, truncated: bool = False) -> str | None:
        return extract_number(text, truncated)

    def score(self, answer: str | None, example: Example) -> bool:
        if answer is None or example.gold is None:
            return False
        return abs(float(answer) - float(example.gold)) < 1e-6

    def format_answer(self, answer: str) -> str:
        return f"Final answer: {answer}"

    def solution(self, example: Example) -> str:
        return f"{example.meta['solution']}\nFinal answer: {example.gold}"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": self.n_train, "n_eval": self.n_eval, "train_path": self.train_path,
                "eval_path": self.eval_path, "hub_id": self.hub_id}
