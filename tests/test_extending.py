"""Extending s2d is one module + one YAML per component: a method (Self-Refine) and a task (addition) that live
outside the package (tests/assets/extending) run through the whole loop, with no file of s2d touched."""

import sys

from conftest import ROOT, compose_config, tiny_overrides
from s2d.artifacts import read_jsonl
from s2d.run import run

EXT = ROOT / "tests" / "assets" / "extending"


def test_a_method_and_a_task_from_outside_the_package_run_the_whole_loop(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXT))
    cfg = compose_config(f"hydra.searchpath=[file://{EXT / 'conf'}]", "method=self_refine", "task=addition",
                         "filter=none", "target=full_response", *tiny_overrides(tiny_model_dir, tmp_path))
    metrics = run(cfg)
    assert metrics["system1/n"] == metrics["system2/n"] == metrics["distilled/n"] == 4
    traces = read_jsonl(next((tmp_path / "cache" / "generate").glob("*/traces.jsonl")))
    assert len(traces) == 8 * 2 and all([c["stage"] for c in t["calls"]] == ["draft", "critique", "refine"]
                                        for t in traces)
    # System 2's tokens are the sum over its three calls, as for every method
    rows = read_jsonl(next(p for p in (tmp_path / "cache" / "evaluate").glob("*/predictions.jsonl")
                           if read_jsonl(p)[0]["calls"] == 3))
    assert all(r["tokens"] == sum(map(sum, r["call_tokens"])) for r in rows)
    assert "s2d_toy" in sys.modules and not str(sys.modules["s2d_toy"].__file__).startswith(str(ROOT / "s2d"))
