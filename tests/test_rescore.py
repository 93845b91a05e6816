"""Re-scoring stored evaluations with the current grader: scores move, stored replies and models do not."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF
from s2d.artifacts import read_json, read_jsonl, write_json, write_jsonl
from s2d.scoring import score
from s2d.stages import evaluate
from s2d.tasks.grading import was_cut
from s2d.types import Call, Example, Trace


class Parity:
    """A task whose answer is the last word of a reply; gold 'even' or 'odd'."""

    name = "parity"
    grader_version = 1

    def __init__(self):
        self.seen_truncated = []

    def eval_examples(self):
        return [Example(f"e{i}", f"is {i} even?", "even" if i % 2 == 0 else "odd") for i in range(4)]

    def extract(self, text, truncated=False):
        self.seen_truncated.append(truncated)
        words = text.split()
        return words[-1] if words and not truncated else None

    def score(self, answer, example):
        return answer is not None and answer == example.gold


def stored_evaluation(tmp_path, task):
    """An evaluate directory as `_evaluate` leaves it: traces, predictions, DONE.json with figures."""
    out = tmp_path / "eval"
    texts = {"e0": "odd no even", "e1": "odd", "e2": "even then odd", "e3": "odd"}
    traces = []
    for ex in task.eval_examples():
        text = texts[ex.id]
        cut = ex.id == "e3"  # the token cap stopped this reply
        traces.append(Trace(ex.id, 0, [Call("respond", ex.input, text, 3, len(text.split()), truncated=cut)],
                            text, answer=text.split()[0]))  # stored answers: an old first-word grader
    write_jsonl(out / "traces.jsonl", [t.to_dict() for t in traces])
    rows, metrics = score(task.eval_examples(), traces, task, "system1")
    write_jsonl(out / "predictions.jsonl", rows)
    write_json(out / "DONE.json", {"stage": "evaluate", "system": "system1", **metrics, "grader_version": 1,
                                   "config": {}})
    return out


def test_rescore_rereads_answers_from_stored_replies(tmp_path):
    task = Parity()
    out = stored_evaluation(tmp_path, task)
    assert read_json(out / "DONE.json")["system1/accuracy"] == 0.75  # first words: odd, odd, even, odd
    traces_before = (out / "traces.jsonl").read_bytes()
    task.grader_version = 2
    summary = evaluate.rescore(out, task, "system1")
    # last words: even (right), odd (right), odd (wrong), and e3 was cut at the cap, so unparsed
    rows = {r["example_id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert [rows[f"e{i}"]["answer"] for i in range(4)] == ["even", "odd", "odd", None]
    assert [rows[f"e{i}"]["correct"] for i in range(4)] == [True, True, False, False]
    assert task.seen_truncated == [False, False, False, True]
    # e0 wrong → right, e2 and e3 right → wrong: three verdicts moved with the answers
    assert summary == {"system": "system1", "n": 4, "answers_changed": 3, "verdicts_changed": 3,
                       "accuracy_before": 0.75, "accuracy_after": 0.5, "grader_version_before": 1, "grader_version_after": 2}
    done = read_json(out / "DONE.json")
    assert done["system1/accuracy"] == 0.5 and done["grader_version"] == 2
    assert done["system1/parse_failures"] == 1
    assert (done["system1/accuracy_ci_low"], done["system1/accuracy_ci_high"]) == pytest.approx(
        (0.150036, 0.849964), abs=1e-5)  # Wilson(2, 4)
    assert done["rescored"] == {"from_grader_version": 1, "answers_changed": 3, "verdicts_changed": 3}
    assert (out / "traces.jsonl").read_bytes() == traces_before


def test_a_final_text_the_method_composed_is_never_taken_as_cut():
    replied = Trace("e", 0, [Call("merge", "p", "A wins", 1, 2, truncated=True)], "A wins")
    composed = Trace("e", 0, [Call("solve", "p", "score 3", 1, 2, truncated=True)], "criterion: 3\n[[A]]")
    assert was_cut(replied) and not was_cut(composed)


def test_agreement_interval_counts_both_orders():
    from s2d.scoring import agreement_intervals

    got = agreement_intervals({"s/agreement": 0.75, "s/pairs": 10, "s/agreement_x": 0.5, "s/pairs_x": 2,
                                "s/inconsistent": 0.1}, "s")
    assert got["s/agreement_n"] == 20 and got["s/agreement_x_n"] == 4
    assert (got["s/agreement_ci_low"], got["s/agreement_ci_high"]) == pytest.approx((0.531299, 0.888139), abs=1e-5)
    assert set(got) == {f"s/agreement{s}_{e}" for s in ("", "_x") for e in ("ci_low", "ci_high", "n")}


# ---- the whole loop on the tiny model ----------------------------------------------------------------------

def tiny_cfg(model_dir, tmp_path, *extra):
    # model and method pinned: the loop must not depend on which ones the primary config defaults to
    overrides = ["model=smollm2-135m", "method=rar2", f"model.name_or_path={model_dir}",
                 f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false",
                 "task=coin_flip", "task.n_train=4", "task.n_eval=6", "generate.n=1", "generate.max_new_tokens=8",
                 "eval.max_new_tokens=8", "train.trainer.max_steps=1", "train.trainer.enable_progress_bar=false",
                 "filter=none", "target=full_response", *extra]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.fixture
def finished_run(tiny_model_dir, tmp_path):
    from s2d.run import run

    cfg = tiny_cfg(tiny_model_dir, tmp_path)
    run(cfg)
    return cfg, tmp_path / "run"


@pytest.fixture
def no_model(monkeypatch):
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource

    def refuse(*a, **k):
        raise AssertionError("a model was loaded or asked to generate")

    monkeypatch.setattr(HFBackend, "generate", refuse)
    monkeypatch.setattr(ModelSource, "load", refuse)


def snapshot(run_dir):
    stages = read_json(run_dir / "run.json")["stages"]
    return {k: {p.name: p.read_bytes() for p in sorted(Path(v).glob("*.jsonl"))}
            for k, v in stages.items()}


def test_rescore_cli_changes_scores_only(finished_run, no_model, monkeypatch, capsys):
    from s2d.rescore import main
    from s2d.tasks.coin_flip import CoinFlip

    cfg, run_dir = finished_run
    metrics_before = read_json(run_dir / "metrics.json")
    files_before = snapshot(run_dir)
    was_yes = {s: sum(json.loads(line)["answer"] == "yes"
                      for line in files_before[f"evaluate/{s}"]["predictions.jsonl"].splitlines())
               for s in ("system1", "system2", "distilled")}
    golds = [ex.gold for ex in CoinFlip(**{k: v for k, v in cfg.task.items() if k != "_target_"}).eval_examples()]
    # a new grader that reads every reply as "yes"
    monkeypatch.setattr(CoinFlip, "extract", lambda self, text, truncated=False: "yes")
    main([str(run_dir)])
    metrics = read_json(run_dir / "metrics.json")
    share_yes = golds.count("yes") / len(golds)
    assert 0 < share_yes < 1
    for system in ("system1", "system2", "distilled"):
        assert metrics[f"{system}/accuracy"] == pytest.approx(share_yes)
        assert metrics[f"{system}/parse_failures"] == 0
        assert metrics[f"{system}/tokens_per_input"] == metrics_before[f"{system}/tokens_per_input"]
        assert metrics[f"{system}/n"] == 6
    # every system answers the same, so no item is discordant
    assert metrics["paired/distilled_vs_system2/b"] == metrics["paired/distilled_vs_system2/c"] == 0
    assert metrics["paired/distilled_vs_system1/p_value"] == 1.0
    files = snapshot(run_dir)
    for stage, before in files_before.items():
        for name, blob in before.items():
            if stage.startswith("evaluate/") and name == "predictions.jsonl":
                assert blob != files[stage][name]
            else:
                assert blob == files[stage][name], f"{stage}/{name} changed"
    out = capsys.readouterr().out
    for system in ("system1", "system2", "distilled"):
        line = next(line for line in out.splitlines() if line.strip().startswith(system))
        before = metrics_before[f"{system}/accuracy"]
        assert f"{6 - was_yes[system]} of 6 answers and " in line
        assert f"verdicts changed, accuracy {before:.3f} → {share_yes:.3f}" in line


def test_a_grader_version_change_rescores_in_place_and_reuses_generation_and_training(
        finished_run, no_model, monkeypatch):
    from s2d.run import run
    from s2d.tasks.coin_flip import CoinFlip

    cfg, run_dir = finished_run
    stages_before = read_json(run_dir / "run.json")["stages"]
    traces_before = {k: (Path(v) / "traces.jsonl").read_bytes()
                     for k, v in stages_before.items() if k.startswith(("generate", "evaluate/"))}
    monkeypatch.setattr(CoinFlip, "grader_version", CoinFlip.grader_version + 1)
    monkeypatch.setattr(CoinFlip, "extract", lambda self, text, truncated=False: "no")
    metrics = run(cfg)
    stages = read_json(run_dir / "run.json")["stages"]
    # the filter re-reads answers under the new grader (a new directory); the same targets keep the model
    assert stages["filter"] != stages_before["filter"]
    assert {k: v for k, v in stages.items() if k != "filter"} == {k: v for k, v in stages_before.items() if k != "filter"}
    for k, blob in traces_before.items():
        assert (Path(stages[k]) / "traces.jsonl").read_bytes() == blob
    for system in ("system1", "system2", "distilled"):
        done = read_json(Path(stages[f"evaluate/{system}"]) / "DONE.json")
        assert done["grader_version"] == CoinFlip.grader_version
        assert {r["answer"] for r in read_jsonl(Path(stages[f"evaluate/{system}"]) / "predictions.jsonl")} == {"no"}
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_grader_version_keys_the_filter_only(monkeypatch):
    from s2d import cache
    from s2d.tasks.coin_flip import CoinFlip

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=/tmp/x", "task=coin_flip"])
    keys = lambda: (cache.generate_key(cfg), cache.filter_key(cfg, "g"),  # noqa: E731
                    *(cache.evaluate_key(cfg, s, "t") for s in ("system1", "system2", "distilled")))
    before = keys()
    monkeypatch.setattr(CoinFlip, "grader_version", CoinFlip.grader_version + 1, raising=False)
    after = keys()
    assert after[1] != before[1]
    assert after[0] == before[0] and after[2:] == before[2:]


def test_training_follows_the_kept_pairs_not_the_filter_directory(tmp_path):
    from s2d import cache

    row = {"example_id": "e", "prompt": "p", "target": "t", "answer": "a", "gold": "g", "correct": True}
    write_jsonl(tmp_path / "a" / "targets.jsonl", [row])
    write_jsonl(tmp_path / "b" / "targets.jsonl", [{**row, "answer": None, "correct": False}])
    write_jsonl(tmp_path / "c" / "targets.jsonl", [{**row, "target": "u"}])
    a, b, c = (cache.targets_digest(tmp_path / n) for n in "abc")
    assert a == b and a != c
