"""GSM8k grade-school math (paper Table 4): numeric answers, worked solutions in the train split."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from s2d.tasks.base import DataNotFound, answer_segment, load_records, resolve_data_path, require_field, take
from s2d.types import Example

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\$?\.\d+")
_CALC = re.compile(r"<<[^>]*>>")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


def parse_number(text: str) -> str | None:
    """Canonical form of one number as written ("$1,200.50" → "1200.5", "3/4" → "0.75", "-7." → "-7")."""
    s = text.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Fraction(s) if "/" in s else Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value)).rstrip("0").rstrip(".")


def extract_number(text: str) -> str | None:
    """The number after the last "Final answer:" (or "the answer is"), else the last number in the text.

    After the marker only its first sentence counts, and in a worked line ("2 * 2 = 4 bolts") the result
    after the last "=" is the answer.
    """
    seg = answer_segment(text)
    if seg:
        sentence = _SENTENCE_END.split(seg, maxsplit=1)[0]
        found = _NUMBER.findall(sentence.rpartition("=")[2]) or _NUMBER.findall(sentence)
        if found:
            return parse_number(found[0])
    found = _NUMBER.findall(text)
    return parse_number(found[-1]) if found else None


class GSM8k:
    """Sources, in order: a file (as given or under paths.data_dir), then the hub dataset through `datasets`."""

    name = "gsm8k"
    version = 2  # bump when prompts or answer extraction change: cached stages are then redone
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
    ):
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
        if path:
            try:
                return load_records(resolve_data_path(path, self.data_dir, key))
            except DataNotFound:
                if not self.hub_id:
                    raise
        if self.hub_id:
            import datasets

            try:
                return list(datasets.load_dataset(self.hub_id, self.hub_config, split=split))
            except Exception as e:  # no network, no local copy: say every way to fix it
                raise DataNotFound(
                    f"gsm8k {split} split: '{path}' not found (as given or under paths.data_dir="
                    f"'{self.data_dir}') and the hub dataset '{self.hub_id}' could not be loaded ({e}). "
                    f"Set {key} to a JSONL file with question/answer fields, or S2D_DATA_DIR to a directory "
                    "holding gsm8k/, or task.hub_id to a reachable dataset."
                ) from e
        raise DataNotFound(f"gsm8k {split} split: set {key} or task.hub_id")

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

    def extract(self, text: str) -> str | None:
        return extract_number(text)

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
