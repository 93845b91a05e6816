"""A change to how a task reads answers must bump its `grader_version`, or cached evaluations keep the old
verdicts and `python -m s2d.rescore` skips them. This test holds, for every task a config names, the version
and a fingerprint of the code that grades it: the syntax (docstrings and comments left out) of the task's
module and of every `s2d.tasks` module it draws on, bar `base.py` (data loading). Change that code and the
fingerprint moves: bump the version if answers may be read differently, then refresh the table with
`python tests/test_grader_versions.py`."""

from __future__ import annotations

import ast
import hashlib
import importlib
import io
import sys
import tokenize
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# task class → (grader_version, fingerprint)
PINNED = {
    "s2d.tasks.capitals.Capitals": (6, "fe8db2f94fa1"),
    "s2d.tasks.coin_flip.CoinFlip": (3, "a50e43157e8e"),
    "s2d.tasks.coin_judge.CoinFlipJudge": (3, "6093e515f798"),
    "s2d.tasks.gsm8k.GSM8k": (3, "a4fa0d290def"),
    "s2d.tasks.last_letter.LastLetter": (4, "b63a25e86da4"),
    "s2d.tasks.mt_bench.MTBench": (3, "072c7026bd4b"),
    "s2d.tasks.multiplication.Multiplication": (3, "4132d051c642"),
    "s2d.tasks.oasst2.OASST2": (3, "638df167024a"),
    "s2d.tasks.spelling.LastLetterLetterwise": (4, "c7bc08806d4d"),
    "s2d.tasks.triviaqa.TriviaQA": (6, "d91609725ec7"),
}


def task_classes() -> list[str]:
    """Every `_target_` of conf/task/, nested groups included."""
    found = set()
    for f in sorted((ROOT / "conf" / "task").rglob("*.yaml")):
        target = (yaml.safe_load(f.read_text()) or {}).get("_target_")
        if target:
            found.add(target)
    return sorted(found)


def grading_modules(module_name: str) -> list[str]:
    """The module and, transitively, every s2d.tasks module it imports, bar base (data loading)."""
    seen, todo = set(), [module_name]
    while todo:
        name = todo.pop()
        if name in seen or name == "s2d.tasks.base":
            continue
        seen.add(name)
        tree = ast.parse(Path(importlib.import_module(name).__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("s2d.tasks."):
                todo.append(node.module)
    return sorted(seen)


def code_of(module_name: str) -> str:
    """The module's source without docstrings, comments, blank lines or trailing spaces: kept as text, not as a
    syntax tree, so the fingerprint is the same on every Python version s2d supports."""
    source = Path(importlib.import_module(module_name).__file__).read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.add((body[0].lineno, body[0].col_offset))
    lines = source.splitlines(keepends=True)
    cut = []  # (start, end) positions, (row, col) with rows from 1
    for t in tokenize.generate_tokens(io.StringIO(source).readline):
        if t.type == tokenize.COMMENT or (t.type == tokenize.STRING and t.start in docstrings):
            cut.append((t.start, t.end))
    for (r0, c0), (r1, c1) in reversed(cut):
        head, tail = lines[r0 - 1][:c0], lines[r1 - 1][c1:]
        lines[r0 - 1:r1] = [head + tail]
    return "\n".join(line.rstrip() for line in "".join(lines).splitlines() if line.strip())


def current() -> dict[str, tuple[int, str]]:
    out = {}
    for target in task_classes():
        module_name, cls_name = target.rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), cls_name)
        digest = hashlib.sha256("\n".join(code_of(m) for m in grading_modules(module_name)).encode()).hexdigest()
        out[target] = (cls.grader_version, digest[:12])
    return out


def test_every_task_of_a_config_is_pinned():
    assert sorted(PINNED) == task_classes()


def test_a_change_to_grading_code_comes_with_a_version_decision():
    moved = []
    for target, (version, digest) in current().items():
        pinned_version, pinned_digest = PINNED.get(target, (None, None))
        if digest != pinned_digest and version == pinned_version:
            moved.append(f"{target}: its grading code changed ({', '.join(grading_modules(target.rsplit('.', 1)[0]))})"
                         f" but grader_version is still {version}")
        elif digest != pinned_digest or version != pinned_version:
            moved.append(f"{target}: grader_version {pinned_version} → {version}; refresh PINNED")
    assert not moved, ("\n".join(moved) + "\nIf answers may now be read differently, bump the class's grader_version;"
                       " then refresh PINNED with `python tests/test_grader_versions.py`.")


def test_the_fingerprint_ignores_docstrings_and_comments(tmp_path, monkeypatch):
    a = tmp_path / "s2d_fp_a.py"
    a.write_text('"""one"""\ndef f(x):\n    """doc"""\n    return x + 1  # note\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_of("s2d_fp_a")
    a.write_text('"""two"""\ndef f(x):\n    # another note\n    return x + 1\n')
    sys.modules.pop("s2d_fp_a")
    assert code_of("s2d_fp_a") == before
    a.write_text('def f(x):\n    return x + 2\n')
    sys.modules.pop("s2d_fp_a")
    assert code_of("s2d_fp_a") != before


if __name__ == "__main__":  # print the table to paste into PINNED
    for target, (version, digest) in current().items():
        print(f'    "{target}": ({version}, "{digest}"),')
