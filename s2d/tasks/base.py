"""What a task offers the methods and stages, and helpers the tasks share."""

from __future__ import annotations

import os
import random
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from s2d.types import Example


class Task(Protocol):
    name: str
    # Version of the answer extraction and scoring (s2d/tasks/grading.py): a change re-scores stored
    # predictions and redoes the filter, never generation.
    grader_version: int
    # Extra words for a RaR rephrase stage, and what follows a rephrased question (paper Figs. 4–5).
    rephrase_note: str
    respond_suffix: str

    def train_examples(self) -> list[Example]: ...

    def eval_examples(self) -> list[Example]: ...

    def prompt(self, example: Example) -> str: ...

    def extract(self, text: str, truncated: bool = False) -> str | None: ...

    def score(self, answer: str | None, example: Example) -> bool: ...

    def format_answer(self, answer: str) -> str: ...

    def identity(self) -> dict[str, Any]: ...

    # Optional: `split_stats() -> dict`, facts about the train/eval split (words shared across splits,
    # inputs shortened to fit a token budget) that the generate stage records under "split" in DONE.json.


class SplitTask:
    """Shared part of tasks whose `_items()` returns (train, eval) examples and whose prompt is the input."""

    def _items(self) -> tuple[list[Example], list[Example]]:
        raise NotImplementedError

    def train_examples(self) -> list[Example]:
        return self._items()[0]

    def eval_examples(self) -> list[Example]:
        return self._items()[1]

    def prompt(self, example: Example) -> str:
        return example.input


class DataNotFound(FileNotFoundError):
    pass


def resolve_data_path(path: str, data_dir: str | None, key: str) -> Path:
    """A file given as-is, or relative to the data directory (`paths.data_dir` / S2D_DATA_DIR)."""
    p = Path(os.path.expanduser(path))
    if p.exists():
        return p
    if data_dir and (Path(data_dir) / path).exists():
        return Path(data_dir) / path
    raise DataNotFound(
        f"{key}='{path}' not found, neither as given nor under paths.data_dir='{data_dir}'. "
        "Set it to an existing file, or point S2D_DATA_DIR (paths.data_dir) at the directory holding it."
    )


class BadDataFile(ValueError):
    pass


def check_data_file(path: Path) -> None:
    """Fail early, naming the file and line, on an empty file or one that is not valid JSON / JSON Lines."""
    import json

    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise BadDataFile(f"{path}: the file is empty; point the task at a file with records")
    if path.suffix == ".jsonl" or (path.suffix == ".json" and not text.lstrip().startswith("[")):
        # split on "\n" only: str.splitlines() also breaks at characters such as U+0085 inside strings
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise BadDataFile(f"{path}, line {n}: not valid JSON ({e.args[0]}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise BadDataFile(f"{path}, line {n}: expected a JSON object per line, got {type(row).__name__}")
    elif path.suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise BadDataFile(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise BadDataFile(f"{path}: record {bad + 1} of the JSON array is not an object")


def load_records(path: Path) -> list[dict]:
    """Rows of a local JSON / JSONL / CSV file, read through `datasets` after a check that names the bad line."""
    import datasets

    kind = {".json": "json", ".jsonl": "json", ".csv": "csv"}.get(path.suffix)
    if kind is None:
        raise BadDataFile(f"{path}: unsupported file type '{path.suffix}' (use .json, .jsonl or .csv)")
    if kind == "json":
        check_data_file(path)
    elif not path.read_text(encoding="utf-8", errors="replace").strip():
        raise BadDataFile(f"{path}: the file is empty; point the task at a file with records")
    ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    return list(ds)


def take(rows: list, n: int, what: str, key: str) -> list:
    """The first n rows, or a clear error when the source has fewer than the config asks for."""
    if len(rows) < n:
        raise ValueError(f"{what} has {len(rows)} records but {key}={n}; lower {key} or use a larger file")
    return rows[:n]


def require_field(row: dict, name: str, where: str, *alternatives: str):
    """row[name] (or the first present alternative), else an error naming the record and its fields."""
    for key in (name, *alternatives):
        if row.get(key) is not None:
            return row[key]
    names = " or ".join(repr(k) for k in (name, *alternatives))
    raise ValueError(f"{where}: missing field {names}; the record has {sorted(row)}")


def builtin_names() -> list[str]:
    text = resources.files("s2d.tasks").joinpath("first_names.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


CENSUS_FILES = ("dist.male.first", "dist.female.first")


def census_names() -> list[str]:
    """The 5,163 distinct first names of the US Census 1990 lists that the `names` package ships (5,494
    rows, some names in both lists), title-cased and sorted; read as data files, the package is not imported."""
    import importlib.metadata

    try:
        files = {f.name: f for f in importlib.metadata.files("names") or [] if f.name in CENSUS_FILES}
    except importlib.metadata.PackageNotFoundError:
        files = {}
    if set(files) != set(CENSUS_FILES):
        raise FileNotFoundError(
            "last_letter draws its words from the census name lists in the `names` package "
            "(names/dist.male.first, names/dist.female.first); install it with `pip install names==0.3.0`")
    out: set[str] = set()
    for name in CENSUS_FILES:
        for line in files[name].locate().read_text().splitlines():
            if line.strip():
                out.add(line.split()[0].title())  # "JAMES  3.318  3.318  1": the name, then frequencies
    return sorted(out)


def synthetic_split(draw, n_train: int, n_eval: int, seed: int, load_eval=None) -> tuple[list[Example], list[Example]]:
    """Seeded unique items `draw(rng, id)`: the first n_eval are the eval split, the rest train; with
    `load_eval` the eval split comes from it instead, and train items that appear in it are dropped."""
    rng = random.Random(seed)
    n_synth = n_train + (0 if load_eval else n_eval)
    items, seen = [], set()
    while len(items) < n_synth:
        ex = draw(rng, f"synth-{len(items)}")
        if ex.input not in seen:
            seen.add(ex.input)
            items.append(ex)
    if load_eval:
        eval_ = load_eval()
        return drop_overlap(items, eval_), eval_
    return items[n_eval:], items[:n_eval]


def drop_overlap(train: list[Example], eval_: list[Example]) -> list[Example]:
    """Train inputs that do not appear (case-insensitively) in the eval split."""
    seen = {" ".join(e.input.lower().split()) for e in eval_}
    return [e for e in train if " ".join(e.input.lower().split()) not in seen]
