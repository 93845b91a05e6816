"""Routing between distilled System 1 and System 2: decisions, token sums, the offline frontier, calibration."""

import json
import math

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ScriptedLLM
from s2d.artifacts import mark_done, read_json, read_jsonl, rewrite_jsonl
from s2d.routing import (agreement, auroc, calibration, cheapest_reaching, decide, frontier, probability, route,
                         swap_consistency, thresholds)
from s2d.types import Sampling


def rec(i, signal, d_ok, d_tok, s2_ok, s2_tok, extra=0):
    return {"example_id": f"e{i}", "gold": "g", "signals": {"agreement": signal}, "signal_tokens": {"agreement": extra},
            "distilled_answer": "d", "distilled_correct": d_ok, "distilled_tokens": d_tok,
            "system2_answer": "s", "system2_correct": s2_ok, "system2_tokens": s2_tok}


# Four inputs: the two least confident are the ones distilled gets wrong and System 2 gets right.
RECORDS = [rec(0, 0.25, False, 2, True, 30, extra=8), rec(1, 0.5, False, 3, True, 40, extra=8),
           rec(2, 0.75, True, 2, False, 50, extra=8), rec(3, 1.0, True, 1, True, 20, extra=8)]


def test_routing_decisions_and_token_sums_on_hand_made_signals():
    assert decide(RECORDS, "agreement", 0.6) == [True, True, False, False]
    at = route(RECORDS, "agreement", 0.6)
    # routed inputs pay attempt + 8 signal tokens + System 2; kept ones attempt + 8
    assert at["tokens_per_input"] == ((2 + 8 + 30) + (3 + 8 + 40) + (2 + 8) + (1 + 8)) / 4 == 27.5
    assert at["accuracy"] == 1.0 and at["share_routed"] == 0.5 and at["n"] == 4
    # nothing routed: distilled alone plus the signal's cost; everything routed: System 2's accuracy at full cost
    none, all_ = route(RECORDS, "agreement", 0.25), route(RECORDS, "agreement", 1.01)
    assert (none["accuracy"], none["tokens_per_input"], none["share_routed"]) == (0.5, (8 + 8 + 8 + 8 + 8) / 4, 0.0)
    assert (all_["accuracy"], all_["share_routed"]) == (0.75, 1.0)
    assert all_["tokens_per_input"] == (2 + 3 + 2 + 1 + 4 * 8 + 30 + 40 + 50 + 20) / 4


def test_signals_on_hand_made_answers():
    assert agreement("7", ["7", "7", "3", None]) == 0.5
    assert agreement(None, [None, None]) == 0.0  # an unparsed answer is never trusted
    assert probability("7", math.log(0.25)) == pytest.approx(0.25)
    assert probability(None, 0.0) == 0.0
    with pytest.raises(ValueError, match="log-probability"):
        probability("7", None)
    flip = {"A": "B", "B": "A"}.get
    assert swap_consistency("A", "B", flip) == 1.0 and swap_consistency("A", "A", flip) == 0.0
    assert swap_consistency("A", None, flip) == 0.0


def test_frontier_equals_routing_at_every_threshold():
    records = RECORDS + [rec(4, 0.5, True, 2, False, 10), rec(5, 0.0, False, 4, False, 70)]  # a tie, a zero
    points = frontier(records, "agreement")
    assert [p["threshold"] for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0, math.nextafter(1.0, math.inf)]
    for p in points:
        assert p == route(records, "agreement", p["threshold"])
    assert [p["share_routed"] for p in points] == [0, 1 / 6, 2 / 6, 4 / 6, 5 / 6, 1]
    assert thresholds([]) == []


def test_cheapest_threshold_reaching_a_target():
    points = frontier(RECORDS, "agreement")
    # 75%: routing the least confident input is enough, (40 + 11 + 10 + 9) / 4 tokens
    best = cheapest_reaching(points, 0.75)
    assert best["threshold"] == 0.5 and best["accuracy"] == 0.75 and best["tokens_per_input"] == 17.5
    # 100%: the two least confident; routing everything costs more and loses input 2
    best = cheapest_reaching(points, 1.0)
    assert best["threshold"] == 0.75 and best["accuracy"] == 1.0 and best["tokens_per_input"] == 27.5
    assert cheapest_reaching(points, 1.01) is None


def test_auroc_golden_values():
    # wrong answers (positives) ranked first by a low signal: perfect; reversed: 0; one tie between classes: 1/2 it
    assert auroc([-0.1, -0.2, -0.9, -0.8], [True, True, False, False]) == 1.0
    assert auroc([-0.9, -0.8, -0.1, -0.2], [True, True, False, False]) == 0.0
    assert auroc([3, 1, 2, 2], [True, False, True, False]) == pytest.approx(3.5 / 4)
    assert auroc([1, 2], [True, True]) is None
    cal = calibration(RECORDS, "agreement", 0.6)
    assert cal["auroc"] == 1.0 and cal["wrong"] == 2
    assert (cal["kept_n"], cal["kept_distilled_accuracy"]) == (2, 1.0)
    assert (cal["routed_n"], cal["routed_distilled_accuracy"], cal["routed_system2_accuracy"]) == (2, 0.0, 1.0)


def test_hf_logprob_is_the_teacher_forced_log_probability(tiny_backend):
    import torch

    from s2d.llm.base import encode_chat

    s = Sampling(max_new_tokens=6)
    prompt = encode_chat(tiny_backend.tokenizer, "abc")
    per_token = []
    (ids,) = tiny_backend._decode(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), s,
                                  logprobs=per_token)
    with torch.no_grad():
        logp = torch.log_softmax(tiny_backend.model(torch.tensor([prompt + ids])).logits[0].float(), -1)
    expect = [logp[len(prompt) + i - 1, t].item() for i, t in enumerate(ids)]
    assert per_token[0] == pytest.approx(expect, abs=1e-4) and len(expect) == len(ids)
    # the completion's logprob sums the counted tokens (EOS included when generated)
    (c,), = tiny_backend.generate(["abc"], s)
    assert c.logprob == pytest.approx(sum(expect[:c.completion_tokens]), abs=1e-4) and c.logprob < 0
    sampled = tiny_backend.generate(["ab"], Sampling(n=2, temperature=1.0, max_new_tokens=4))[0]
    assert all(x.logprob is not None and x.logprob < 0 for x in sampled)


# ---- the routed stage on a scripted distilled model --------------------------------------------------------

def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", "task=coin_flip", *overrides])


def scripted_distilled():
    """Example i's sampled answers agree with its greedy answer on i mod 5 of 4 samples."""

    def reply(prompt, k):
        i = sum(map(ord, prompt)) % 5
        return "yes" if k < i or k == 0 else "no"

    return ScriptedLLM(reply)


def stage_inputs(tmp_path, task):
    """A hand-written System 2 evaluation: right on every other input, 50 tokens each."""
    from s2d.stages import route as route_stage  # noqa: F401

    s2 = tmp_path / "system2"
    rows = [{"example_id": e.id, "answer": e.gold if i % 2 == 0 else None, "correct": i % 2 == 0, "tokens": 50}
            for i, e in enumerate(task.eval_examples())]
    rewrite_jsonl(s2 / "predictions.jsonl", rows)
    from s2d.stats import wilson

    k, n = sum(r["correct"] for r in rows), len(rows)
    low, high = wilson(k, n)
    mark_done(s2, {"system2/accuracy": k / n, "system2/accuracy_ci_low": low, "system2/accuracy_ci_high": high,
                   "system2/n": n, "system2/tokens_per_input": 50.0, "grader_version": task.grader_version})
    return s2


def point_at(points, t):
    """The frontier point making threshold t's decisions: the first at or above t (above them all: the last)."""
    return min((p for p in points if p["threshold"] >= t), key=lambda p: p["threshold"], default=points[-1])


def test_frontier_offline_equals_the_router_run_at_three_thresholds(tmp_path):
    from hydra.utils import instantiate

    from s2d.stages import route as route_stage

    cfg = cfg_of("task.n_eval=12", "task.n_train=2")
    task = instantiate(cfg.task)
    s2 = stage_inputs(tmp_path, task)
    samp = Sampling(max_new_tokens=8)
    with pytest.raises(ValueError, match="eval.route.signal=swap needs inputs judged in both orders; task 'coin_flip'"):
        route_stage.compute(cfg_of("eval.route.signal=swap"), tmp_path, task, s2, scripted_distilled(), samp)
    runs = {}
    for t in (0.3, 0.6, 1.0):
        c = cfg_of("task.n_eval=12", "task.n_train=2", f"eval.route.threshold={t}")
        out = tmp_path / f"routed-{t}"
        out.mkdir()
        route_stage.compute(c, out, task, s2, scripted_distilled(), samp)
        runs[t] = out
    front = read_json(runs[0.3] / "frontier.json")
    points = front["signals"]["agreement"]["points"]
    assert "probability" not in front["signals"]  # the scripted model reports no log-probabilities
    recs = read_jsonl(runs[0.3] / "route.jsonl")
    assert len(recs) == 12 and len({r["signals"]["agreement"] for r in recs}) >= 3
    for t, out in runs.items():
        done = read_json(out / "DONE.json")
        p = point_at(points, t)
        assert done["routed/accuracy"] == p["accuracy"] and done["routed/tokens_per_input"] == p["tokens_per_input"]
        assert done["routed/share_routed"] == p["share_routed"] and done["routed/n"] == 12
        preds = read_jsonl(out / "predictions.jsonl")
        assert [r["routed"] for r in preds] == [r["signals"]["agreement"] < t for r in recs]
        # the token sum, input by input: one-word attempt, four one-word samples, System 2's 50 if routed
        assert [r["tokens"] for r in preds] == [1 + 4 + (50 if r["routed"] else 0) for r in preds]
        assert done["routed/signal_tokens_per_input"] == 4.0
        assert read_jsonl(out / "route.jsonl") == recs  # the same stored records whatever the threshold
    # the cheapest threshold whose accuracy reaches System 2's interval is named, and is on the frontier
    reach = front["signals"]["agreement"]["reaches_system2"]
    assert reach is None or reach in points


def test_swap_signal_on_judge_pairs(tmp_path):
    from s2d.stages.route import figures, records
    from s2d.tasks.judge import pair_examples
    from s2d.types import Call, Trace

    exs = pair_examples("p1", "q", "x", "y", "A", None, 100) + pair_examples("p2", "q", "u", "v", "B", None, 100)

    class Judge:
        name = "judge"

        def score(self, answer, ex):
            return answer == ex.gold

    # p1: A then (swapped) B, consistent; p2: A in both orders, inconsistent
    verdicts = {"p1:ab": "A", "p1:ba": "B", "p2:ab": "A", "p2:ba": "A"}
    tokens = {"p1:ab": 3, "p1:ba": 5, "p2:ab": 7, "p2:ba": 11}
    attempt = [Trace(i, 0, [Call("answer", "", v, 1, tokens[i])], v, v) for i, v in verdicts.items()]
    s2 = [{"example_id": e.id, "answer": e.gold, "correct": True, "tokens": 40} for e in exs]
    recs = records(exs, attempt, [], [{"example_id": i, "sample": 0, "logprob": None} for i in verdicts], s2, Judge())
    assert [r["signals"]["swap"] for r in recs] == [1.0, 1.0, 0.0, 0.0]
    assert [r["signal_tokens"]["swap"] for r in recs] == [5, 3, 11, 7]  # the other order's attempt
    _, m = figures(recs, "swap", 0.5, {"ci_low": 0.5})
    # p2 goes to System 2 (right, 40 tokens) in both orders; p1 stays with its right distilled verdicts
    assert m["routed/share_routed"] == 0.5 and m["routed/accuracy"] == 1.0
    assert m["routed/tokens_per_input"] == (3 + 5 + 5 + 3 + 7 + 11 + 40 + 11 + 7 + 40) / 4
    with pytest.raises(ValueError, match="eval.route.signal=probability is not available"):
        figures(recs, "probability", 0.5, {"ci_low": 0.5})
    # routed gets the judge figures the other systems report: agreement with gold over both orders
    from s2d.routing import routed_rows
    from s2d.scoring import task_figures
    from s2d.tasks.judge import pair_metrics

    class JudgeWithPairs(Judge):
        def extra_metrics(self, examples, answers, system):
            return pair_metrics(examples, answers, system)

    for e in exs:
        e.meta["group"] = "writing" if e.id.startswith("p1") else "math"
    m = task_figures(exs, routed_rows(recs, "swap", 0.5), JudgeWithPairs(), "routed")
    assert m["routed/agreement"] == 1.0 and m["routed/pairs"] == 2 and m["routed/agreement_n"] == 4
    assert m["routed/inconsistent"] == 0.0  # System 2 answered p2 consistently
    assert m["routed/accuracy_math"] == 1.0 and m["routed/n_math"] == 2 and m["routed/tokens_per_input_math"] == 7 + 11 + 40


def test_route_config_is_checked_and_keys_of_other_systems_ignore_it():
    from s2d import config
    from s2d.stages.evaluate import system_key
    from s2d.stages.route import system_key as routed_key

    base = cfg_of()
    routed = cfg_of("eval.systems=[system1,system2,distilled,routed]", "eval.route.threshold=0.2")
    for s in ("system1", "system2", "distilled"):
        assert system_key(base, s, "t") == system_key(routed, s, "t")
    assert routed_key(routed, "t") != routed_key(cfg_of("eval.systems=[system1,system2,distilled,routed]"), "t")
    # the agreement samples draw from the sampling seed even when greedy evaluations ignore it
    reseeded = cfg_of("eval.systems=[system1,system2,distilled,routed]", "eval.route.threshold=0.2", "seed=1")
    assert system_key(reseeded, "system1", "t") == system_key(routed, "system1", "t")
    assert routed_key(reseeded, "t") != routed_key(routed, "t")
    with pytest.raises(ValueError, match="route.system_key"):
        system_key(routed, "routed", "t")
    with pytest.raises(ValueError, match="eval.route.signal='confidence' is not allowed; use one of: agreement"):
        config.check(cfg_of("eval.systems=[routed]", "eval.route.signal=confidence"))
    with pytest.raises(ValueError, match="temperature > 0"):
        config.check(cfg_of("eval.systems=[routed]", "eval.route.temperature=0"))
    config.check(cfg_of("eval.route.signal=confidence"))  # not checked unless routed is evaluated


def test_tiny_model_run_writes_routed_metrics_and_frontier(tiny_model_dir, tmp_path):
    from s2d.run import run

    overrides = ["model=smollm2-135m", f"model.name_or_path={tiny_model_dir}", f"paths.output_dir={tmp_path / 'run'}",
                 f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false",
                 "task.n_train=4", "task.n_eval=6", "generate.n=2", "generate.max_new_tokens=8",
                 "eval.max_new_tokens=8", "train.trainer.max_steps=1", "train.trainer.enable_progress_bar=false",
                 "filter=none", "target=full_response", "eval.route.k=2", "method=rar2",
                 "eval.systems=[system1,system2,distilled,routed]"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        m = run(compose("config", overrides=overrides))
    assert m["routed/n"] == 6 and 0 <= m["routed/share_routed"] <= 1
    assert {"routed/accuracy", "routed/accuracy_ci_low", "routed/tokens_per_input",
            "routed/calibration/agreement/kept_n", "routed/calibration/probability/kept_n"} <= m.keys()
    run_dir = tmp_path / "run"
    routed = run_dir / "evaluate-routed"
    front = json.loads((routed / "frontier.json").read_text())
    assert set(front["signals"]) == {"agreement", "probability"}  # no swap: coin flips are not judged pairs
    recs = read_jsonl(routed / "route.jsonl")
    # the attempt is the distilled evaluation's greedy reply: same answers and tokens
    distilled = {r["example_id"]: r for r in read_jsonl(run_dir / "evaluate-distilled" / "predictions.jsonl")}
    assert [r["distilled_tokens"] for r in recs] == [distilled[r["example_id"]]["tokens"] for r in recs]
    system2 = {r["example_id"]: r for r in read_jsonl(run_dir / "evaluate-system2" / "predictions.jsonl")}
    assert [r["system2_tokens"] for r in recs] == [system2[r["example_id"]]["tokens"] for r in recs]
    preds = read_jsonl(routed / "predictions.jsonl")
    assert m["routed/tokens_per_input"] == sum(r["tokens"] for r in preds) / 6
    assert all(0 <= r["signals"]["probability"] <= 1 for r in recs)
    assert (run_dir / "frontier.png").stat().st_size > 0
    assert "paired/routed_vs_system2/p_value" in m

    # the sweep report draws the frontier and tables it; W&B (offline) gets the curve as a line chart and the image
    from s2d.report import report
    from s2d.tracking import WandbTracker

    tracker = WandbTracker(mode="offline")
    tracker.start({}, tmp_path / "wb", job_type="report")
    try:
        out = report(run_dir, tracker)
    finally:
        tracker.finish()
    (f,) = out["frontiers"]
    assert f["frontier"] == front and f["system1"]["accuracy"] == m["system1/accuracy"]
    text = (run_dir / "report.md").read_text()
    assert "## Routing between distilled System 1 and System 2" in text and "agreement < 0.75" in text
    assert (run_dir / "frontier.png").stat().st_size > 0
    wb = next((tmp_path / "wb").glob("wandb/offline-run-*"))
    assert list(wb.glob("files/media/table/report/frontier/coin_flip/rar2/none_table_*.json"))
    assert list(wb.glob("files/media/images/report/frontier_plot_*.png"))

    # re-scoring reads the stored replies and rebuilds the routed figures without a model
    from s2d.rescore import rescore_run

    summaries = {s["system"]: s for s in rescore_run(run_dir)}
    assert summaries["routed"]["answers_changed"] == 0 and summaries["routed"]["accuracy_after"] == m["routed/accuracy"]
    assert read_jsonl(routed / "route.jsonl") == recs
    # another threshold recomputes only the routed stage; the three other systems are reused
    before = set((tmp_path / "cache" / "evaluate").iterdir())
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        again = run(compose("config", overrides=[*overrides, "eval.route.threshold=0.3",
                                                 f"paths.output_dir={tmp_path / 'again'}"]))
    assert len(set((tmp_path / "cache" / "evaluate").iterdir()) - before) == 1
    assert {k: again[k] for k in ("system1/accuracy", "system2/tokens_per_input", "distilled/tokens_per_input")} == \
        {k: m[k] for k in ("system1/accuracy", "system2/tokens_per_input", "distilled/tokens_per_input")}
    assert again["routed/tokens_per_input"] == point_at(front["signals"]["agreement"]["points"], 0.3)["tokens_per_input"]


def test_trace_records_with_a_call_field_this_version_lacks_still_read():
    from s2d.types import Trace

    call = {"stage": "reason", "prompt": "p", "text": "t", "prompt_tokens": 3, "completion_tokens": 2,
            "truncated": False, "logprob": None}
    t = Trace.from_dict({"example_id": "e", "sample": 0, "calls": [call], "final_text": "t", "answer": None})
    assert t.calls[0].completion_tokens == 2 and "logprob" not in t.to_dict()["calls"][0]
