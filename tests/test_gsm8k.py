"""GSM8k: numeric extraction, majority voting over k samples, few-shot prompts, and the ablation switches."""

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ScriptedLLM
from s2d import cache
from s2d.artifacts import read_jsonl
from s2d.config import check
from s2d.methods.base import fewshot_messages
from s2d.methods.cot import CoTFewShot
from s2d.methods.system1 import System1
from s2d.run import run
from s2d.scoring import score
from s2d.voting import majority
from s2d.tasks.base import DataNotFound
from s2d.tasks.gsm8k import GSM8k, extract_number, parse_number
from s2d.types import Call, Example, Sampling, Trace


@pytest.mark.parametrize("text, number", [
    ("Final answer: 18", "18"),
    ("Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\nFinal answer: 14 apples", "14"),
    ("She earns $1,200.50 a week.", "1200.5"),
    ("Final answer: $72.", "72"),
    ("So the answer is -7.", "-7"),
    ("Each gets 3/4 of a pie", "0.75"),
    ("It costs 5 dollars, then 12 more, so 17 in total", "17"),
    ("Final answer: 2,000", "2000"),
    ("Final answer: about .5", "0.5"),
    ("Final answer: 2 * 2 = 4 bolts of blue fiber.", "4"),
    ("The answer is 2 * 2 = 4 bolts. To calculate it, multiply 2 by 2.", "4"),
    ("Final answer: 18. She sold 9 eggs.", "18"),
    ("Final answer: $1,200.50 per week.", "1200.5"),
    ("I do not know.", None),
    ("", None),
])
def test_number_extraction(text, number):
    assert extract_number(text) == number


def test_numeric_scoring():
    t = GSM8k()
    ex = Example("x", "q", gold=parse_number(" 72"))
    assert ex.gold == "72"
    assert t.score("72", ex) and t.score(parse_number("72.0"), ex) and not t.score("71", ex)
    assert not t.score(None, ex)
    assert t.extract(t.format_answer("72")) == "72"


def test_majority_vote_and_ties():
    assert majority(["3", "4", "4", None]) == "4"
    assert majority(["5", "3", "3", "5"]) == "5"  # tie: the answer sampled first wins
    assert majority([None, None]) is None
    assert majority([None, "8"]) == "8"


def test_score_votes_over_k_samples_and_sums_their_tokens():
    t = GSM8k()
    exs = [Example("a", "q", gold="4"), Example("b", "q", gold="9")]

    def trace(ex, k, answer, tokens):
        return Trace(ex, k, [Call("reason", "p", "t", 10, tokens)], "t", answer)

    traces = [trace("a", 0, "3", 50), trace("a", 1, "4", 60), trace("a", 2, "4", 70),
              trace("b", 0, None, 40), trace("b", 1, "2", 20), trace("b", 2, None, 30)]
    rows, m = score(exs, traces, t, "system2")
    assert [r["answer"] for r in rows] == ["4", "2"]
    assert [r["votes"] for r in rows] == [["3", "4", "4"], [None, "2", None]]
    assert m["system2/accuracy"] == 0.5
    assert m["system2/tokens_per_input"] == (180 + 90) / 2


def pool_task(n=20):
    t = GSM8k(n_train=n, n_eval=3)
    t._cache["train"] = [Example(f"train-{i}", f"question {i}?", gold=str(i), meta={"solution": f"{i} = {i}"})
                         for i in range(n)]
    return t


def test_fewshot_prompts_are_seeded_and_never_include_the_question():
    t = pool_task()
    ex = Example("test-0", "question 5?", gold="5")
    a = fewshot_messages(t, ex, 8, seed=0, answer=t.solution)
    b = fewshot_messages(t, ex, 8, seed=0, answer=t.solution)
    c = fewshot_messages(t, ex, 8, seed=1, answer=t.solution)
    assert a == b and a != c
    assert len(a) == 17 and a[-1] == {"role": "user", "content": "question 5?"}
    assert [m["role"] for m in a[:4]] == ["user", "assistant", "user", "assistant"]
    assert all(m["content"] != "question 5?" for m in a[:-1])
    assert a[1]["content"].endswith("Final answer: " + a[0]["content"].split()[1].rstrip("?"))
    # every question from the pool itself: its own text is never among its shots
    for e in t.train_examples():
        shots = fewshot_messages(t, e, 8, 0, t.solution)[:-1]
        assert e.input not in [m["content"] for m in shots]
    with pytest.raises(ValueError, match="pool has 19"):
        fewshot_messages(t, ex, 25, 0, t.solution)


def test_fewshot_methods_build_the_paper_prompts():
    t = pool_task()
    ex = [Example("test-0", "question 99?", gold="99")]
    llm = ScriptedLLM(lambda p, k: "Final answer: 7")
    tr = System1(shots=8).run(ex, t, llm, Sampling())
    assert tr[0].calls[0].prompt.count("[assistant] Final answer:") == 8 and tr[0].answer == "7"
    tr = CoTFewShot(shots=8).run(ex, t, llm, Sampling())
    assert tr[0].calls[0].prompt.count(" = ") == 8  # eight worked solutions


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/x", *overrides])


def test_k_samples_need_a_temperature():
    with pytest.raises(ValueError, match="eval.k=5 samples at eval.temperature=0"):
        check(cfg_of("eval.k=5"))
    check(cfg_of("eval.k=5", "eval.temperature=0.7"))


def test_distill_from_system1_changes_the_generations():
    a, b = cfg_of(), cfg_of("distill_from=system1")
    assert cache.generate_key(a) != cache.generate_key(b)
    assert cache.generate_key(b) == cache.generate_key(cfg_of("distill_from=system1", "method=cot"))
    with pytest.raises(ValueError, match="distill_from='teacher' is not allowed"):
        check(cfg_of("distill_from=teacher"))


def test_missing_data_names_every_option(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    missing = {"train_path": "gsm8k/none.jsonl", "eval_path": "gsm8k/none.jsonl"}  # not a shipped file either
    t = GSM8k(n_train=2, n_eval=2, data_dir=str(tmp_path), **missing)
    with pytest.raises(DataNotFound) as e:
        t.train_examples()
    msg = str(e.value)
    assert "task.train_path" in msg and "S2D_DATA_DIR" in msg and "task.hub_id" in msg and "shipped" in msg
    with pytest.raises(DataNotFound, match="task.eval_path"):
        GSM8k(n_train=2, n_eval=2, data_dir=str(tmp_path), hub_id=None, **missing).eval_examples()


def test_the_shipped_copy_is_the_default_and_the_run_says_so(tmp_path, caplog):
    """No data directory: the gzip copy shipped with s2d is read, and the log names it; a user file wins."""
    import logging

    caplog.set_level(logging.INFO, logger="s2d.tasks.base")
    t = GSM8k(n_train=3, n_eval=2, data_dir=None)
    assert len(t.train_examples()) == 3 and t.eval_examples()[0].gold == "18"  # GSM8k's first test answer
    assert "shipped with s2d" in caplog.text and "test.jsonl.gz" in caplog.text
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "1+1=2\\n#### 2"}\n')
    caplog.clear()
    assert GSM8k(n_train=1, n_eval=1, data_dir=str(tmp_path)).eval_examples()[0].gold == "2"
    assert "(user path)" in caplog.text


def test_staged_gsm8k_files(staged_data):
    t = GSM8k(n_train=7473, n_eval=1319, data_dir=str(staged_data))
    assert len(t.train_examples()) == 7473 and len(t.eval_examples()) == 1319
    assert t.eval_examples()[0].gold == "18"
    assert t.train_examples()[0].gold == "72" and "<<" not in t.train_examples()[0].meta["solution"]
    assert all(e.gold is not None for e in t.eval_examples())


def test_tiny_end_to_end_on_staged_gsm8k(staged_data, tiny_model_dir, tmp_path):
    cfg = cfg_of("model=smollm2-135m", f"model.name_or_path={tiny_model_dir}", f"paths.output_dir={tmp_path / 'run'}",
                 f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={staged_data}", "logger=none",
                 "backend.progress=false", "train.trainer.enable_progress_bar=false", "method=cot", "task=gsm8k",
                 "task.n_train=4", "task.n_eval=3", "generate.n=2", "generate.max_new_tokens=16", "eval.k=2",
                 "eval.temperature=0.7", "eval.max_new_tokens=16", "train.trainer.max_steps=1", "train.max_length=2048", "filter=none",
                 "target=full_response", "system1.shots=2")
    m = run(cfg)
    for s in ("system1", "system2", "distilled"):
        assert m[f"{s}/n"] == 3
    preds = read_jsonl(tmp_path / "run" / "evaluate-system2" / "predictions.jsonl")
    assert all(len(p["votes"]) == 2 for p in preds)
    assert m["system2/tokens_per_input"] == sum(p["tokens"] for p in preds) / 3
    s1 = read_jsonl(tmp_path / "run" / "evaluate-system1" / "traces.jsonl")
    assert s1[0]["calls"][0]["prompt"].count("[assistant] Final answer:") == 2
