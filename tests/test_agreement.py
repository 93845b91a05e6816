"""The graders against hand labels on real replies s2d's runs wrote (s2d/agreement.py, tests/assets/real_replies/).

The disagreement lists below are the current graders' exact misses. A grader change that moves any verdict or
extracted value on these replies fails here: look at what moved (`python -m s2d.agreement`), give each new
disagreement a category in categories.jsonl, and update the lists and docs/results on purpose.
"""

from collections import Counter

import pytest

from s2d.agreement import ASSETS, CATEGORIES, NUMERIC_TASKS, measure, read_jsonl, same_value, stratified_sample

# Replies where the grader's right/wrong verdict differs from the hand label.
VERDICT_DISAGREEMENTS: set[str] = {
    "capitals/organism-s2a/system1/system1/greedy/eval-q315/0",
    "coin_flip/smollm2-135m/cot/system2/greedy/synth-4/0",
    "coin_flip/smollm2-135m/cot/system2/sampled/synth-21/1",
    "coin_flip/smollm2-135m/cot/system2/sampled/synth-22/1",
    "coin_flip/smollm2-135m/rar1/system2/greedy/synth-1/0",
    "coin_flip/smollm2-135m/rar1/system2/greedy/synth-2/0",
    "coin_flip/smollm2-135m/rar1/system2/sampled/synth-20/0",
    "oasst2/smollm2-135m/system1/system1/greedy/706994e5-371e-44c5-b0ee-cf1f2a181684:ba/0",
    "triviaqa/smollm2-135m/system1/system1/greedy/eval-q2013/0",
}
# Replies where the verdict agrees but the grader read another value than the human (value tasks only).
VALUE_DISAGREEMENTS: set[str] = {
    "coin_flip/smollm2-135m/cot/system2/greedy/synth-10/0",
    "coin_flip/smollm2-135m/cot/system2/greedy/synth-12/0",
    "coin_flip/smollm2-135m/cot/system2/greedy/synth-7/0",
    "coin_flip/smollm2-135m/rar1/system2/greedy/synth-17/0",
    "coin_flip/smollm2-135m/system1/system1/greedy/synth-10/0",
    "coin_flip/smollm2-135m/system1/system1/greedy/synth-12/0",
    "coin_flip/smollm2-135m/system1/system1/greedy/synth-9/0",
    "gsm8k/smollm2-135m/cot/system2/greedy/test-1/0",
    "gsm8k/smollm2-135m/cot/system2/greedy/test-7/0",
    "last_letter/organism-small/cot/system2/greedy/synth-11/0",
    "last_letter/organism-small/cot/system2/greedy/synth-4/0",
    "last_letter/organism-small/cot/system2/greedy/synth-7/0",
    "last_letter/organism-small/system1/system1/greedy/synth-0/0",
    "last_letter/organism-small/system1/system1/greedy/synth-10/0",
    "last_letter/organism-small/system1/system1/greedy/synth-2/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-10/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-13/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-14/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-15/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-19/0",
    "last_letter/smollm2-135m/cot/system2/greedy/synth-8/0",
    "last_letter/smollm2-135m/cot/system2/sampled/synth-21/0",
    "last_letter/smollm2-135m/cot/system2/sampled/synth-21/1",
    "last_letter/smollm2-135m/cot/system2/sampled/synth-22/0",
    "last_letter/smollm2-135m/rar1/system2/greedy/synth-2/0",
    "last_letter/smollm2-135m/rar1/system2/greedy/synth-4/0",
    "last_letter/smollm2-135m/rar1/system2/sampled/synth-22/0",
    "last_letter/smollm2-135m/rar1/system2/sampled/synth-23/0",
    "last_letter/smollm2-135m/rar1/system2/sampled/synth-23/1",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-0/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-1/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-10/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-11/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-12/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-13/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-14/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-15/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-16/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-17/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-18/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-19/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-2/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-3/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-4/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-5/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-6/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-8/0",
    "last_letter/smollm2-135m/system1/system1/greedy/synth-9/0",
    "multiplication/organism-small/cot/system2/greedy/synth-1/0",
    "multiplication/smollm2-135m/rar1/system2/greedy/synth-1/0",
    "multiplication/smollm2-135m/rar1/system2/greedy/synth-10/0",
    "multiplication/smollm2-135m/rar1/system2/greedy/synth-14/0",
    "multiplication/smollm2-135m/rar1/system2/greedy/synth-17/0",
    "multiplication/smollm2-135m/rar1/system2/greedy/synth-3/0",
    "multiplication/smollm2-135m/rar1/system2/sampled/synth-22/0",
    "multiplication/smollm2-135m/rar2/system2/greedy/synth-8/0",
    "multiplication/smollm2-135m/rar2/system2/sampled/synth-23/1",
    "multiplication/smollm2-135m/system1/system1/greedy/synth-16/0",
    "multiplication/smollm2-135m/system1/system1/greedy/synth-18/0",
    "multiplication/smollm2-135m/system1/system1/greedy/synth-19/0",
    "oasst2/smollm2-135m/system1/system1/greedy/706994e5-371e-44c5-b0ee-cf1f2a181684:ab/0",
    "oasst2/smollm2-135m/system1/system1/greedy/fae38ad4-a338-429b-a756-9c1fc7279a21:ba/0",
}


@pytest.fixture(scope="module")
def m():
    return measure()


def test_the_files_hold_enough_real_replies_and_labels():
    replies, labels = read_jsonl(ASSETS / "replies.jsonl"), read_jsonl(ASSETS / "labels.jsonl")
    assert len(replies) >= 600
    assert len(labels) >= 300
    assert len({r["id"] for r in replies}) == len(replies)
    assert len({lab["id"] for lab in labels}) == len(labels)
    # every task, both systems, the embedded model and an organism, and replies cut at the cap are in the labels
    by_id = {r["id"]: r for r in replies}
    labelled = [by_id[lab["id"]] for lab in labels]
    assert {"coin_flip", "last_letter", "multiplication", "gsm8k", "triviaqa", "capitals", "oasst2",
            "mt_bench"} <= {r["task"] for r in labelled}
    assert {"system1", "system2"} <= {r["system"] for r in labelled}
    assert {"smollm2-135m", "organism-small", "organism-s2a"} <= {r["model"] for r in labelled}
    assert sum(r["cut"] for r in labelled) >= 30


def test_each_label_is_consistent_with_its_gold():
    """A labelled value equal to the gold is right and any other value is wrong (value tasks); unparsed is wrong."""
    by_id = {r["id"]: r for r in read_jsonl(ASSETS / "replies.jsonl")}
    for lab in read_jsonl(ASSETS / "labels.jsonl"):
        assert isinstance(lab["correct"], bool) and lab["answer"], lab
        r = by_id[lab["id"]]
        if lab["answer"] == "unparsed":
            assert not lab["correct"], lab
        elif r["task"] in {"coin_flip", "last_letter", "oasst2", "mt_bench"} | NUMERIC_TASKS:
            assert lab["correct"] == same_value(r["task"], lab["answer"], r["gold"]), lab


def test_agreement_figures_are_per_task_with_intervals(m):
    for name, t in m["tasks"].items():
        assert t["n"] >= 10, name
        assert t["ci_low"] <= t["agreement"] <= t["ci_high"]
        assert t["agree"] + sum(d["task"] == name for d in m["verdict_disagreements"]) == t["n"]
    assert m["all"]["n"] == m["labels"]


def test_the_current_disagreements_are_exactly_these(m):
    assert {d["id"] for d in m["verdict_disagreements"]} == VERDICT_DISAGREEMENTS
    assert {d["id"] for d in m["value_disagreements"]} == VALUE_DISAGREEMENTS


def test_every_verdict_disagreement_has_a_hand_category(m):
    for d in m["verdict_disagreements"]:
        assert d["category"] in CATEGORIES, d["id"]
    for d in m["value_disagreements"]:
        assert d["kind"] in {"value-vs-unparsed", "unparsed-vs-value", "other-value"}, d["id"]


def test_the_sample_is_stratified_and_seeded():
    replies = read_jsonl(ASSETS / "replies.jsonl")
    a, b = stratified_sample(replies, 24, seed=0), stratified_sample(replies, 24, seed=0)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    sizes = Counter((r["task"], r["system"], r["model"]) for r in replies)
    assert Counter((r["task"], r["system"], r["model"]) for r in a) == {k: min(n, 24) for k, n in sizes.items()}
    # the labelled replies are that sample (labels may add more, never fewer)
    assert {r["id"] for r in a} <= {lab["id"] for lab in read_jsonl(ASSETS / "labels.jsonl")}
    # a stratum's draw does not depend on the other strata
    one = [r for r in replies if r["task"] == "coin_flip"]
    assert [r["id"] for r in stratified_sample(one, 24)] == [r["id"] for r in a if r["task"] == "coin_flip"]


def test_same_value_reads_numbers_and_unparsed():
    assert same_value("gsm8k", "1,200", "1200")
    assert not same_value("gsm8k", "unparsed", "12")
    assert same_value("coin_flip", "unparsed", None)
    assert not same_value("coin_flip", "yes", "no")
