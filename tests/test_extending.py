"""docs/extending.md is executable: its code blocks that start with a file name (`# my_s2d/parity.py`) are
copied into a temporary directory, outside the package, and run through the real config composition and loop
with no file of s2d touched. A change to s2d that breaks the documented examples, or an edit of the examples
that no longer runs, fails here."""

import re
import sys

import pytest
from hydra.utils import instantiate

from conftest import ROOT, compose_config, tiny_overrides
from s2d.artifacts import read_jsonl
from s2d.run import run

DOC = ROOT / "docs" / "extending.md"
# a fenced block whose first line names the file it is
BLOCK = re.compile(r"^```(?:python|yaml)\n# ((?:my_s2d|my_conf)/[\w/]+\.(?:py|yaml))\n(.*?)^```", re.S | re.M)
FILES = {"my_s2d/self_refine.py", "my_s2d/parity.py", "my_conf/method/self_refine.yaml", "my_conf/task/parity.yaml"}


@pytest.fixture
def docs_examples(tmp_path, monkeypatch):
    """The docs' examples written out as files under tmp_path/docs, importable as the package `my_s2d`."""
    root = tmp_path / "docs"
    found = BLOCK.findall(DOC.read_text())
    assert {path for path, _ in found} == FILES, "docs/extending.md's examples changed: update FILES and this test"
    for path, body in found:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"# {path}\n{body}")
    (root / "my_s2d" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "my_s2d" or m.startswith("my_s2d.")]:
        monkeypatch.delitem(sys.modules, name)
    return root


def test_the_docs_method_and_task_run_the_whole_loop(docs_examples, tiny_model_dir, tmp_path):
    cfg = compose_config(f"hydra.searchpath=[file://{docs_examples / 'my_conf'}]", "method=self_refine",
                         "task=parity", "task.n_train=8", "task.n_eval=4", "filter=none", "target=full_response",
                         *tiny_overrides(tiny_model_dir, tmp_path))
    metrics = run(cfg)
    assert metrics["system1/n"] == metrics["system2/n"] == metrics["distilled/n"] == 4
    assert metrics["filter/kept"] == 8
    traces = read_jsonl(next((tmp_path / "cache" / "generate").glob("*/traces.jsonl")))
    assert len(traces) == 8 * 2 and all([c["stage"] for c in t["calls"]] == ["draft", "critique", "refine"]
                                        for t in traces)
    assert all(t["calls"][0]["prompt"].endswith('Answer, ending with "Final answer: <answer>".') for t in traces)
    # System 2's tokens are the sum over its three calls, as for every method
    rows = read_jsonl(next(p for p in (tmp_path / "cache" / "evaluate").glob("*/predictions.jsonl")
                           if read_jsonl(p)[0]["calls"] == 3))
    assert all(r["tokens"] == sum(map(sum, r["call_tokens"])) for r in rows)
    assert str(sys.modules["my_s2d.self_refine"].__file__).startswith(str(docs_examples))


def test_the_docs_task_honours_the_contract_and_its_optional_part(docs_examples, tmp_path):
    from test_contracts import _has, members

    from s2d.tasks.base import OPTIONAL_TASK_PARTS, Task, WorkedSolutions

    cfg = compose_config(f"hydra.searchpath=[file://{docs_examples / 'my_conf'}]", "task=parity",
                         f"paths.output_dir={tmp_path}")
    task = instantiate(cfg.task)
    assert not sorted(n for n in members(Task) if not _has(task, n))
    assert [p.__name__ for p in OPTIONAL_TASK_PARTS if isinstance(task, p)] == [WorkedSolutions.__name__]
    train, eval_ = task.train_examples(), task.eval_examples()
    assert (len(train), len(eval_)) == (32, 16) and not {e.input for e in train} & {e.input for e in eval_}
    # the eval split does not move with n_train (train_only_keys)
    more = instantiate(compose_config(f"hydra.searchpath=[file://{docs_examples / 'my_conf'}]", "task=parity",
                                      "task.n_train=40", f"paths.output_dir={tmp_path}").task)
    assert [e.input for e in more.eval_examples()] == [e.input for e in eval_]
    # every worked solution grades right; the answer format parses; a hedge does not
    assert all(task.score(task.extract(task.solution(e)), e) for e in train + eval_)
    assert task.extract(task.format_answer("odd")) == "odd" and task.extract("even or odd? Final answer: odd") == "odd"
    assert task.extract("It could be even or odd.") is None and task.extract("Final answer: even", truncated=True) is None
    with pytest.raises(Exception, match=r"task.n_bits=3; raise n_bits"):
        instantiate(compose_config(f"hydra.searchpath=[file://{docs_examples / 'my_conf'}]", "task=parity",
                                   "task.n_bits=3", f"paths.output_dir={tmp_path}").task)


def test_the_prompts_command_shows_the_docs_method_texts(docs_examples):
    from s2d.prompts import compose, show

    shown = show(compose([f"hydra.searchpath=[file://{docs_examples / 'my_conf'}]", "method=self_refine",
                          "method.prompts.draft='{question} Be brief.'"]))
    assert "method.prompts.draft:  # set in the config\n    {question} Be brief.\n" in shown
    assert "method.prompts.critique:\n    Question: {question}\n    Proposed answer: {draft}\n" in shown


def test_experiment_tiny_distils_from_the_command_line(tmp_path):
    """The contributor's first command, `python -m s2d.run experiment=tiny`, builds the tiny model and distils:
    every input is kept (filter=none) and trained on (target=full_response), and the table has a distilled row."""
    import json
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(S2D_MODEL_CACHE=str(tmp_path / "models"), S2D_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "s2d.run", "experiment=tiny", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["filter/kept"] == metrics["filter/seen"] == 8 and metrics["distilled/n"] == 8
    train = json.loads(next((tmp_path / "cache" / "train").glob("*/DONE.json")).read_text())
    assert train["trained"] and train["pairs"] == 8
    assert any(line.startswith("distilled ") for line in proc.stdout.splitlines()), proc.stdout
    assert (tmp_path / "models" / "tiny-v1" / "config.json").exists()
