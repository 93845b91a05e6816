"""GSM8k grade-school math (paper Table 4): numeric answers, worked solutions in the train split."""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from s2d.tasks.base import found_files, load_source, require_field, take
from s2d.tasks.grading import committed_text, final_segment, one_of, without_parentheticals
from s2d.types import Example

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\$?\.\d+")
_CALC = re.compile(r"<<[^>]*>>")
# One number as a reply writes it: a mixed number ("1 1/2"), a LaTeX fraction ("\frac{3}{4}", "1\frac{1}{2}"),
# or a plain number with its currency, separators, decimals and fraction bar ("$1,200.50", "3/4", ".5").
_TOKEN = re.compile(
    r"-?\$?\d+\s+\d+\s*/\s*\d+(?![\d.,/])"
    r"|-?\d*\\[dt]?frac\s*\{[^{}]*\}\s*\{[^{}]*\}"
    r"|-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\$?\.\d+")
# A number the segment rules out ("not 5; it is 6", "instead of 5").
_NEGATED = re.compile(r"\b(?:not|isn't|is not|instead of|rather than)\s+(?:-?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)", re.I)
_FIRST_SENTENCE = re.compile(r"\.(?:\s|$)")
# Where an explanation of the number begins ("$18, since 9 × 2 = 18", "15 dollars, which is 5 more than 10").
_EXPLANATION = re.compile(r"\s(?:because|since|which|given|from)\s", re.I)
# Words and signs after which the number asked for follows: a worked line's result ("= 4", "→ 6") or what the
# subject ends with ("she makes $18", "so 12"). The number after the last of them counts.
_POINTER = re.compile(
    r"=|→|->|⇒|=>|\b(?:is|are|was|were|equals?|makes?|made|earns?|earned|gets?|got|has|have|had|pays?|paid|costs?"
    r"|totals?|gives?|leaves?|needs?|needed|spends?|spent|saves?|saved|receives?|received|so|therefore|thus)\b", re.I)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}")
_LATEX_DELIMITERS = re.compile(r"\\[()\[\]]|\$\$")
_MIXED = re.compile(r"^(-?)\$?(\d+)\s+(\d+\s*/\s*\d+)$")

# Number words ("eighteen", "twenty-five", "one hundred and twenty"): math-verify reads digits and LaTeX only.
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_WORD = "|".join([*_UNITS, *_TENS, *_SCALES])
_NUMBER_WORDS = re.compile(rf"\b(?:{_WORD})(?:(?:\s+and\s+|[\s-]+)(?:{_WORD}))*\b", re.I)


def words_to_number(phrase: str) -> int | None:
    """The value of a number written in English words ("twenty-five" → 25, "one hundred and twenty" → 120)."""
    total, current = 0, 0
    for w in re.findall(r"[a-z]+", phrase.lower()):
        if w == "and":
            continue
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _SCALES:
            total, current = total + max(current, 1) * _SCALES[w], 0
        else:
            return None
    return total + current


def parse_number(text: str) -> str | None:
    """Canonical form of one number as written ("$1,200.50" → "1200.5", "3/4" → "0.75", "-7." → "-7"):
    how s2d reads the gold answers of its datasets."""
    s = text.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return _canonical(value)


def _canonical(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value)).rstrip("0").rstrip(".")


def _math_verify_value(text: str) -> str | None:
    """The one number math-verify (Hugging Face's answer parser) reads in `text` — a token s2d chose, or a
    \boxed{} — in canonical form; None for no number or several ("\boxed{18, 20}")."""
    import sympy
    from math_verify import parse
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its once-per-process note on timeouts
    # No signal-based timeout: it works only in the main thread, and s2d hands it one short token at a time.
    found = parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                  extraction_mode="first_match", parsing_timeout=None)
    value = found[0] if found else None
    if not isinstance(value, sympy.Expr) or not value.is_number or not value.is_real:  # a string, a set, a symbol
        return None
    if value.is_Rational:
        return _canonical(Fraction(int(value.p), int(value.q)))
    return _canonical(Fraction(str(float(value))).limit_denominator(10**9))


def token_value(token: str) -> str | None:
    """The value of one number token s2d picked: a mixed number is written as a sum for math-verify, which
    reads "1 1/2" as 1; a LaTeX fraction goes in math mode; everything else as written."""
    token = token.replace("−", "-").strip()
    mixed = _MIXED.match(token)
    if mixed:
        sign, whole, frac = mixed.groups()
        token = f"{sign}({whole}+{frac.replace(' ', '')})"
    elif "\\" in token:
        token = f"${token}$"
    return _math_verify_value(token)


def boxed_value(text: str, every: bool = False) -> str | None:
    """The value inside the last \boxed{…} of `text` (None if there is none or it holds no single number);
    with `every`, the one value all its boxes hold ("\boxed{18} or \boxed{20}" is a hedge: None)."""
    found = _BOXED.findall(text)
    if not found:
        return None
    if every and len(found) > 1:
        return one_of([boxed_value(f"\\boxed{{{f}}}") for f in found])
    inner = found[-1].replace("\\%", "").replace("%", "")
    if re.search(r"\bor\b", inner):
        return None  # "\boxed{18 or 20}": a hedge
    words = _NUMBER_WORDS.fullmatch(inner.strip())
    if words:
        value = words_to_number(words.group(0))
        return None if value is None else str(value)
    return _math_verify_value(f"\\boxed{{{inner}}}")


def number_in(segment: str) -> str | None:
    """The number a marker's segment commits to. A \boxed{} wins; else, in the segment's first sentence before
    an explanation ("because", "since", "which", "from"), parentheticals and ruled-out numbers ("not 5")
    dropped: the first number after the last pointer that a number follows ("= 4", "→ 6", "she makes $18",
    "so 12"), else the first number; number words ("eighteen") when it holds no digits. Two different
    numbers joined by "or" are a hedge (None). math-verify reads the value of the number chosen."""
    segment = segment.replace("−", "-")
    if _BOXED.search(segment):
        return boxed_value(segment, every=True)
    text = without_parentheticals(_LATEX_DELIMITERS.sub(" ", segment))
    sentence = _FIRST_SENTENCE.split(text, maxsplit=1)[0]
    clause = _EXPLANATION.split(f"{sentence} ", maxsplit=1)[0].replace("%", " ")
    clause = _NEGATED.sub(" ", clause)
    tokens = [(m.start(), m.group(0)) for m in _TOKEN.finditer(clause)]
    if not tokens:
        tokens = [(m.start(), str(v)) for m in _NUMBER_WORDS.finditer(clause)
                  if (v := words_to_number(m.group(0))) is not None]
    if not tokens:
        return None
    values = [(pos, token_value(t)) for pos, t in tokens]
    values = [(pos, v) for pos, v in values if v is not None]
    if not values:
        return None
    if re.search(r"\bor\b", clause) and one_of([v for _, v in values]) is None:
        return None
    chosen = values[0][1]
    for p in _POINTER.finditer(clause):
        after = [v for pos, v in values if pos >= p.end()]
        if after:
            chosen = after[0]
    return chosen


def extract_number(text: str, truncated: bool = False) -> str | None:
    """The number after the last answer marker ("Final answer:", "the answer is", "#### ", a heading "Final
    Answer" with the answer below, …); with no marker, the last \boxed{} of the reply, else its last number
    (the field's "flexible" rule). A reply cut at the token cap counts only through a finished marker line,
    never through its last number (an intermediate result)."""
    text = committed_text(text, truncated)
    seg = final_segment(text)
    if seg is not None:
        return number_in(seg)
    if truncated:
        return None
    if _BOXED.search(text):
        return boxed_value(text)
    found = list(_TOKEN.finditer(_LATEX_DELIMITERS.sub(" ", text.replace("−", "-"))))
    return token_value(found[-1].group(0)) if found else None


class GSM8k:
    """Sources, in order: a file (as given, under paths.data_dir, or shipped with s2d), then the hub dataset at
    `revision` through `datasets`."""

    name = "gsm8k"
    train_only_keys = ("n_train",)  # the eval split is the first n_eval test problems, whatever n_train is
    version = 2  # bump when prompts or data loading change: cached stages are then redone
    grader_version = 3  # 2: the last answer marker counts, ruled-out numbers and hedges, cut replies; 3: check
    # steps, headings, display math, "#### 18" and invented turns in the segment choice; the number after the last
    # pointer ("makes $18", "→ 6"), \boxed{}, mixed numbers and number words; values read by math-verify
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
