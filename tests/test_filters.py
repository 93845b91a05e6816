"""Self-consistency and no-filter on hand-made votes; yield and label precision are exact."""

import pytest

from s2d.filters import NoFilter, SelfConsistency
from s2d.stages.filter import build_targets
from s2d.tasks.last_letter import LastLetter
from s2d.types import Example, Trace


def votes(ex_id, answers):
    return [Trace(ex_id, k, [], f"text {a}", a) for k, a in enumerate(answers)]


def test_default_is_the_papers_rule_plurality_kept_ties_dropped():
    sc = SelfConsistency()
    assert sc.min_share == 0.0
    # 2 of 5 is a plurality: the paper keeps it (the old default min_share=0.5 dropped it)
    assert sc.select(votes("a", ["x", "x", "y", "z", None])).answer == "x"
    assert sc.select(votes("a", ["x", None, None, None])).answer == "x"
    assert sc.select(votes("a", ["x", "y", None, None])) is None  # tie for the top
    assert sc.select(votes("a", ["x", "x", "y", "y", "z"])) is None


def test_majority_kept_tie_dropped_share_enforced():
    sc = SelfConsistency(min_share=0.5)
    assert sc.select(votes("a", ["ne", "ne", "en", None])).answer == "ne"
    assert sc.select(votes("a", ["ne", "en", "ne", "en"])) is None  # tie
    assert sc.select(votes("a", [None, None])) is None
    # 2 of 5 is a plurality but below half
    assert sc.select(votes("a", ["x", "x", "y", "z", None])) is None
    assert SelfConsistency(min_share=0.4).select(votes("a", ["x", "x", "y", "z", None])).answer == "x"
    assert SelfConsistency(min_share=0.75).select(votes("a", ["x", "x", "x", "y"])).answer == "x"
    assert SelfConsistency(min_share=0.76).select(votes("a", ["x", "x", "x", "y"])) is None


def test_min_share_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="filter.min_share"):
        SelfConsistency(min_share=1.5)


def test_no_filter_takes_first_sample():
    assert NoFilter().select(votes("a", ["y", "x", "x"])).answer == "y"


def test_build_targets_yield_and_label_precision():
    task = LastLetter()
    exs = [Example(i, f"q{i}", gold=g) for i, g in [("a", "ne"), ("b", "rb"), ("c", "xy"), ("d", "zz")]]
    traces = (
        votes("a", ["ne", "ne", "en", "ne"])      # kept, right
        + votes("b", ["rr", "rr", "rb", None])    # kept, wrong
        + votes("c", ["xy", "yx", "xy", "yx"])    # tie: dropped
        + votes("d", [None, None, None, "zz"])    # 1 of 4: dropped
    )
    rows, stats, calls = build_targets(exs, traces, SelfConsistency(0.5), task, "answer")
    assert [(r["example_id"], r["target"]) for r in rows] == [("a", 'The answer is "ne".'), ("b", 'The answer is "rr".')]
    assert stats["filter/kept"] == 2 and stats["filter/seen"] == 4
    assert stats["filter/yield"] == 0.5
    assert stats["filter/label_precision"] == 0.5
    assert stats["filter/parse_failures"] == 4
    assert calls == []  # self-consistency calls no model
    rows, _, _ = build_targets(exs, traces, SelfConsistency(0.5), task, "full_response")
    assert rows[0]["target"] == "text ne"
    with pytest.raises(ValueError, match="target must be one of answer, full_response"):
        build_targets(exs, traces, SelfConsistency(0.5), task, "reasoning")


def test_usc_answer_goes_through_the_tasks_extract_like_a_method_sample():
    """USC and no-USC targets are the same kind of text: the task's extracted answer, formatted by the task."""
    from conftest import ScriptedLLM
    from s2d.filters import UniversalSelfConsistency

    class Upper(LastLetter):
        def extract(self, text, truncated=False):
            return text.strip().upper() or None

    task = Upper(n_train=1, n_eval=1)
    ex = Example("a", "q", gold="NE")
    llm = ScriptedLLM(lambda p, k: "Most say ne.\nFINAL: ne")
    flt = UniversalSelfConsistency(demo=False)
    rows, _, calls = build_targets([ex], votes("a", ["NE", "EN", "NE"]), flt, task, "answer", llm)
    assert rows[0]["answer"] == "NE" and rows[0]["target"] == task.format_answer("NE")
    assert calls[0]["final"] == "ne" and calls[0]["answer"] == "NE"
    from s2d.types import request_seed

    assert llm.seeds == [[request_seed(0, "a", "usc")]]


def test_usc_lessons_copy_the_answer_most_replies_agree_on_without_reading_the_gold():
    """What a model organism learns USC's call from: the prompt `curate` sends for those replies, and a target
    naming the answer most of them agree on (equal extracted answers up to case, punctuation and spacing), copied
    as written. No gold is read: a wrong majority is the target. No clear majority, no lesson."""
    from conftest import ScriptedLLM
    from s2d.filters import UniversalSelfConsistency
    from s2d.llm.base import render_prompt
    from s2d.tasks.triviaqa import TriviaQA

    task = TriviaQA.__new__(TriviaQA)  # extract and prompt need no data
    ex = Example("q1", "What is the capital of Chile? I think the answer is Lima.", gold="Santiago",
                 meta={"question": "What is the capital of Chile?", "aliases": ["Santiago"]})
    usc = UniversalSelfConsistency()
    replies = ["The capital of Chile is Santiago.", "It is Lima.", "the capital of chile is santiago",
               "The capital of Chile is  Santiago!"]
    [(call, prompt, target)] = usc.lessons(task, ex, replies)
    assert call == "usc" and target == "Most answers say The capital of Chile is Santiago.\nFINAL: The capital of Chile is Santiago"
    # the prompt is exactly the call curate makes on these replies
    sent = []
    llm = ScriptedLLM(lambda p, k: sent.append(p) or "FINAL: x")
    traces = [Trace("q1", k, [], r, task.extract(r)) for k, r in enumerate(replies)]
    usc.curate([ex], {"q1": traces}, task, llm)
    assert sent == [render_prompt(prompt)]
    # a wrong majority is taught all the same: the gold is never read
    [(_, _, target)] = usc.lessons(task, ex, ["Lima.", "Santiago.", "It is Lima.", "lima"])
    assert target == "Most answers say Lima.\nFINAL: Lima"
    # "It is Lima." extracts to the whole sentence, which differs from "Lima": two of four agree, one stands alone
    assert task.extract("It is Lima.") == "It is Lima."
    assert usc.lessons(task, ex, ["Lima.", "Santiago.", "Lima", "Santiago"]) == []  # a tie
    assert usc.lessons(task, ex, ["Lima.", "Santiago.", "Quito.", "Bogota."]) == []  # no two agree
    assert usc.lessons(task, ex, ["", " ", "Lima.", "Quito."]) == []  # nothing parsed twice
    select = UniversalSelfConsistency(mode="select")
    [(_, _, target)] = select.lessons(task, ex, ["Quito.", "Lima.", "Santiago.", "lima"])
    assert target == "Answer 2 says what most of them say.\nFINAL: Answer 2"
    from s2d.filters.usc import parse_choice, parse_final

    assert parse_choice(target, 4) == 1 and parse_final("Most answers say Lima.\nFINAL: Lima") == "Lima"
