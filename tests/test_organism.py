"""The CPU model organism: code-written solutions, the multiplication task, the organism model source and
the report's data-size curve. The slow test runs the default run (a small coin-flip organism and the loop) on the embedded model."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import CONF
from s2d.report import curve, curve_markdown, points
from s2d.tasks.coin_flip import CoinFlip, moves_of
from s2d.tasks.last_letter import LastLetter, words_of
from s2d.tasks.multiplication import Multiplication
from s2d.types import Example


@pytest.mark.parametrize("task", [LastLetter(n_train=60, n_eval=20), CoinFlip(n_train=60, n_eval=20, n_people=4),
                                  Multiplication(n_train=60, n_eval=20), Multiplication(3, 2, n_train=20, n_eval=5)])
def test_solutions_reach_the_gold_answer_through_the_task_parser(task):
    for e in task.train_examples() + task.eval_examples():
        text = task.solution(e)
        assert task.score(task.extract(text), e), (e.input, text)
        assert text.splitlines()[-1] == f"Final answer: {e.gold}"
        assert len(text.splitlines()) >= 2  # intermediate steps before the answer line


def test_last_letter_solution_spells_each_word():
    e = LastLetter.make("x", ["Ann", "Bob"])
    assert words_of(e.input) == ["Ann", "Bob"]
    assert LastLetter().solution(e) == ("Ann: A-n-n, last letter n.\nBob: B-o-b, last letter b.\nJoined: nb.\n"
                                        "Final answer: nb")


def test_coin_flip_solution_tracks_the_side_after_each_person():
    e = CoinFlip.make("x", ["Ann", "Bob", "Mary Jo"], [True, False, True])
    assert moves_of(e.input) == [("Ann", True), ("Bob", False), ("Mary Jo", True)]
    assert CoinFlip().solution(e).splitlines() == [
        "The coin starts heads up.", "Ann flips it: now tails up.", "Bob does not flip it: still tails up.",
        "Mary Jo flips it: now heads up.", "The coin ends heads up, so yes.", "Final answer: yes"]
    # RaR's file wording parses the same way.
    text = "A coin is heads up. Ka flips the coin. Sherrie flips the coin. Is the coin still heads up?"
    assert moves_of(text) == [("Ka", True), ("Sherrie", True)]
    with pytest.raises(ValueError, match="coin-flip question"):
        moves_of("Is the sky blue?")


def test_multiplication_items_solution_and_parsing():
    t = Multiplication(n_train=30, n_eval=10, seed=3)
    assert len({e.input for e in t.train_examples() + t.eval_examples()}) == 40
    assert all(10 <= e.meta["a"] < 100 and 10 <= e.meta["b"] < 100 for e in t.train_examples())
    assert t.eval_examples()[0].input == Multiplication(n_train=5, n_eval=10, seed=3).eval_examples()[0].input
    e = Multiplication.make("x", 47, 38)
    assert Multiplication().solution(e).splitlines() == [
        "47 × 38 = 47 × 30 + 47 × 8.", "47 × 30 = 40 × 30 + 7 × 30 = 1200 + 210 = 1410.",
        "47 × 8 = 40 × 8 + 7 × 8 = 320 + 56 = 376.", "1410 + 376 = 1786.", "Final answer: 1786"]
    assert t.extract("So 47 × 38 = 1786.") == "1786"
    assert t.extract("Final answer: 1,786") == "1786"
    assert t.extract("no number") is None
    with pytest.raises(ValueError, match="exceeds the 81 distinct"):
        Multiplication(1, 1, n_train=80, n_eval=10)


def compose_organism(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["experiment=organism/main", *overrides])


def test_organism_trains_on_solutions_under_the_system2_prompt_and_replays_system1(tmp_path):
    cfg = compose_organism(f"paths.cache_dir={tmp_path}", "model.tasks.last_letter.n_spell=2",
                           "model.tasks.last_letter.n_pairs=3",
                           "model.tasks.coin_flip.n_train=4", "model.tasks.multiplication.n_train=3",
                           "model.replay_per_task=1")
    organism = instantiate(cfg.model)
    replies = {(name, e.id): f"base reply {e.id}" for name, _, _, replayed in organism.items() for e in replayed}
    rows = organism.pairs(replies)
    solutions = [r for r in rows if r["kind"] == "solution"]
    assert [sum(r["task"] == n for r in solutions) for n in ("last_letter", "coin_flip", "multiplication")] == [4, 3, 2]
    cot = instantiate(cfg.method)
    for r in solutions:
        assert r["prompt"].endswith("\n\n" + cot.instruction), r  # exactly the System 2 prompt of the loop
        assert len(r["target"].splitlines()) >= 2 and r["target"].startswith(r["target"].splitlines()[0])
    # Replay: the bare System 1 prompt with the base model's own reply, never a code-written answer.
    replay = [r for r in rows if r["kind"] == "replay"]
    assert len(replay) == 3 and all(r["target"] == f"base reply {r['id']}" for r in replay)
    assert not any(cot.instruction in r["prompt"] for r in replay)
    for name in ("last_letter", "coin_flip", "multiplication"):
        ids = [(r["id"], r["kind"]) for r in rows if r["task"] == name]
        assert len({i for i, _ in ids}) == len(ids)  # an item is either solved or replayed, never both
    # Its items come from its own seeds, not from the loop's unlabeled or eval inputs.
    task = instantiate(cfg.task)
    loop_inputs = {e.input for e in task.train_examples() + task.eval_examples()}
    mine = {r["prompt"].split("\n\n")[0] for r in rows if r["task"] == task.name}
    assert mine and not mine & loop_inputs
    assert organism.resolve()[0].startswith(str(tmp_path / "organism"))
    with pytest.raises(ValueError, match="model.replay_per_task=5 leaves no worked solutions"):
        instantiate(compose_organism("model.tasks.last_letter.n_spell=2", "model.tasks.last_letter.n_pairs=3",
                                     "model.replay_per_task=5").model).items()


def test_organism_key_follows_what_it_is_trained_on(tmp_path):
    base = ["paths.cache_dir=/tmp/a"]
    key = instantiate(compose_organism(*base).model).key()
    assert instantiate(compose_organism("paths.cache_dir=/tmp/b").model).key() == key  # where: not what
    for change in ("model.tasks.coin_flip.n_train=7", "model.instruction=Reason.", "model.seed=3",
                   "model.train.module.optimizer.lr=0.001", "model.tasks.multiplication.digits_a=3",
                   "model.replay_per_task=4", "model.replay_max_new_tokens=10"):
        assert instantiate(compose_organism(*base, change).model).key() != key, change


def test_organism_rejects_a_task_without_solutions():
    cfg = compose_organism("+model.tasks.triviaqa._target_=s2d.tasks.triviaqa.TriviaQA")
    with pytest.raises(ValueError, match="model.tasks.triviaqa.*no worked solutions"):
        instantiate(cfg.model).pairs()


def _run(task, n, acc, filter_="self_consistency", distill_from="method"):
    return {"task": task, "method": "cot", "filter": filter_, "distill_from": distill_from,
            "metrics": {"filter/seen": n, "filter/kept": n // 2, "distilled/accuracy": acc,
                        "distilled/tokens_per_input": 9.0, "system1/accuracy": 0.1, "system1/tokens_per_input": 8.0,
                        "system2/accuracy": 0.9, "system2/tokens_per_input": 50.0}}


def test_report_curve_over_unlabeled_inputs():
    runs = [_run("last_letter", 100, 0.8), _run("last_letter", 25, 0.4), _run("last_letter", 50, 0.6),
            _run("coin_flip", 100, 0.7)]
    rows = curve(runs)
    assert [(c["unlabeled"], c["accuracy"]) for c in rows] == [(25, 0.4), (50, 0.6), (100, 0.8)]
    assert "| last_letter | cot | self_consistency | 25 | 12 | 40.0% | 9.0 |" in curve_markdown(rows)
    labels = {p["row"] for p in points(runs) if p["task"] == "last_letter"}
    assert {"Distilled cot (n=25)", "Distilled cot (n=50)", "Distilled cot (n=100)"} <= labels
    assert {p["row"] for p in points(runs) if p["task"] == "coin_flip"} == {"System 1", "System 2: cot",
                                                                            "Distilled cot"}
    assert curve([_run("coin_flip", 100, 0.7)]) == []
    json.dumps(rows)  # plain data, loggable


@pytest.mark.parametrize("model", ["organism", "smollm2-135m"])
def test_the_distilled_model_replaces_any_model_config_in_the_backend(model, tmp_path):
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource
    from s2d.stages.evaluate import distilled_backend

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", "backend.batch_size=7"])
    llm = distilled_backend(cfg, tmp_path)
    assert isinstance(llm, HFBackend) and llm.batch_size == 7
    assert type(llm.source) is ModelSource and llm.source.name_or_path == str(tmp_path / "model")


def compose_paper(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["experiment=organism/paper", "paths.output_dir=/tmp/x", *overrides])


ROWS = ("last_letter", "coin_flip", "multiplication")  # conf/organism_row/: the cot rows


def test_letterwise_target_is_one_token_per_letter_and_grades_as_last_letter():
    from s2d.tasks.spelling import LastLetterLetterwise

    task, plain = LastLetterLetterwise(n_train=30, n_eval=10), LastLetter(n_train=30, n_eval=10)
    assert task.format_answer("ey") == 'The answer is "e-y".'
    assert task.extract(task.format_answer("ey")) == "ey" and task.extract(plain.format_answer("ey")) == "ey"
    assert [e.input for e in task.eval_examples()] == [e.input for e in plain.eval_examples()]  # same items
    assert task.identity() != plain.identity()


def test_spelling_skill_spells_names_outside_the_eval_pool_and_never_answers_a_loop_input():
    from s2d.tasks.spelling import Spelling, eval_words

    task = Spelling(n_spell=40, n_pairs=10, seed=5, exclude_seed=0, exclude_n_eval=200)
    items = task.train_examples()
    assert len(items) == 50 and all(e.id.startswith("spell-") for e in items[:40])
    assert all(e.id.startswith("pair-") for e in items[40:])  # pairs last: the organism replays those
    first = items[0]
    word = first.meta["word"]
    assert task.solution(first) == f"{word}: {'-'.join(word)}, last letter {word[-1].lower()}.\nFinal answer: {word[-1].lower()}"
    assert all(task.extract(task.solution(e)) == e.gold for e in items)
    banned = eval_words(2, 200, 0)
    assert len(banned) == 400 and not task.words() & banned
    # the loop's eval pool at n_eval=100 lies inside the excluded pool of 200 items
    loop = LastLetter(n_train=64, n_eval=100, seed=0)
    assert {w.lower() for e in loop.eval_examples() for w in words_of(e.input)} <= banned
    with pytest.raises(ValueError, match="no eval split"):
        Spelling(n_eval=3)


@pytest.mark.parametrize("row", ROWS)
def test_paper_rows_are_disjoint_and_no_code_written_answer_to_a_loop_input_reaches_training(row):
    """Issue 19: no eval item's words (last letter) or questions in the distillation inputs, and the
    organism's code-written solutions are never for a loop input (train or eval) of any row."""
    cfg = compose_paper(f"+organism_row={row}")
    task = instantiate(cfg.task)
    train, eval_ = task.train_examples(), task.eval_examples()
    assert len(eval_) == 100 and len(train) == cfg.task.n_train
    assert not {e.input for e in train} & {e.input for e in eval_}
    if task.name == "last_letter":
        assert len(train) >= 1000
        train_words = {w.lower() for e in train for w in words_of(e.input)}
        eval_words_ = {w.lower() for e in eval_ for w in words_of(e.input)}
        assert len(train_words) == 2 * len(train) and len(eval_words_) == 200
        assert not train_words & eval_words_
    organism = instantiate(cfg.model)
    rows = organism.pairs()  # the solution rows (replay rows carry the base model's own replies)
    questions = {r["prompt"].removesuffix("\n\n" + organism.instruction) for r in rows}
    loop_inputs = {e.input for e in train + eval_}
    assert rows and not questions & loop_inputs
    # the organism's spelling never touches an eval word of the last-letter row
    if task.name == "last_letter":
        assert not instantiate(cfg.model.tasks.last_letter).words() & eval_words_
    # the control row has an organism of its own, taught products only (conf/model/organism-mult.yaml)
    assert cfg.model.name == ("organism-mult" if row == "multiplication" else "organism-smollm2-135m")


def test_paper_table_sets_rows_beside_the_paper_and_judges_the_goals():
    from s2d.paper import paper_table

    def run(task, s1, s2, d, n=100):
        m = {"filter/seen": 64}
        for system, acc in (("system1", s1), ("system2", s2), ("distilled", d)):
            m.update({f"{system}/accuracy": acc, f"{system}/n": n, f"{system}/tokens_per_input": 10.0})
        return {"task": task, "method": "cot", "metrics": m}

    text = paper_table([run("multiplication", 0.0, 0.18, 0.02), run("coin_flip", 0.01, 0.96, 1.0),
                        run("last_letter", 0.03, 0.57, 0.04)])
    lines = text.splitlines()
    assert lines[2].startswith("| last_letter (cot, 64 inputs) | system1 | 3.0% [1.0, 8.5] (n=100) | 10.0 | 30.0% (Table 1")
    assert "| coin_flip (cot, 64 inputs) | distilled | 100.0% [96.3, 100.0] (n=100) | 10.0 | 75.7%" in text
    assert "multiplication (cot, 64 inputs) | system2 | 18.0%" in text and "52.77% (Table 4" in text
    assert ("last_letter: System 2 − System 1 = +54.0 points (goal ≥ +30: met); distilled − System 2 = -53.0 points "
            "(goal ≥ −10: not met)") in text
    assert "coin_flip: System 2 − System 1 = +95.0 points (goal ≥ +30: met); distilled − System 2 = +4.0 points" in text
    assert "multiplication: System 2 − System 1 = +18.0 points (goal ≥ +15: met); distilled 2.0% vs System 2 18.0% " \
           "(control: expected to fail, did)" in text


@pytest.mark.slow
@pytest.mark.skipif(not __import__("conftest").embedded_model_installed(), reason="the embedded model package is not installed")
def test_default_run_shows_the_papers_ordering(tmp_path):
    """`python -m s2d.run` with no overrides (organism-small, cot, coin flip): measured cold 5 min 13 s and
    5.1 GiB here, System 1 0%, System 2 95%, distilled 92.5% of 40 at 6 tokens; asserted with wide margins."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "s2d.run", "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
           f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["system1/n"] == 40
    assert m["system2/accuracy"] >= m["system1/accuracy"] + 0.5, m
    assert m["distilled/accuracy"] >= m["system1/accuracy"] + 0.5, m
    assert m["distilled/tokens_per_input"] <= m["system2/tokens_per_input"] / 4, m
    assert "system2" in proc.stdout and "distilled" in proc.stdout
    # the organism: worked solutions and replayed System 1 replies, none of them a loop input
    organism = next((tmp_path / "cache" / "organism").iterdir())
    made = json.loads((organism / "DONE.json").read_text())["tasks"]["coin_flip"]
    assert made["replay"] == 16 and made["solution"] + made.get("dropped_as_loop_inputs", 0) == 48, made


def test_organism_drops_its_items_that_are_loop_inputs(tmp_path):
    # avoid = the organism's own multiplication task: every one of its items is a loop input, none may stay
    cfg = compose_organism(f"paths.cache_dir={tmp_path}", "~model.tasks.last_letter", "~model.tasks.coin_flip",
                           "model.tasks.multiplication.n_train=30", "model.replay_per_task=2",
                           "model.avoid.multiplication.n_train=20", "model.avoid.multiplication.n_eval=0",
                           "model.avoid.multiplication.seed=${model.tasks.multiplication.seed}")
    organism = instantiate(cfg.model)
    ((name, _, solved, replayed),) = organism.items()
    assert organism.dropped() == {"multiplication": [f"synth-{i}" for i in range(20)]}
    assert [e.id for e in solved + replayed] == [f"synth-{i}" for i in range(20, 30)]
    base = instantiate(compose_organism(f"paths.cache_dir={tmp_path}", "~model.tasks.last_letter",
                                        "~model.tasks.coin_flip", "model.tasks.multiplication.n_train=30",
                                        "model.replay_per_task=2").model)
    assert base.key() != organism.key()  # keyed by what it trains on


TRIVIA = "task=organism/s2a"  # the S2A row on real TriviaQA instead of the row's world capitals


def _known_s2a_row(data_dir, *overrides):
    """The S2A row on TriviaQA (TRIVIA): its config and loop task, with every fifth probed question answered right
    in the bare phrasing and, of those, all but every tenth in the second (as the inputs stage's two rounds would
    record the model's replies)."""
    cfg = compose_paper("+organism_row=s2a", TRIVIA, f"paths.data_dir={data_dir}", *overrides)
    task = instantiate(cfg.task)
    replies = {rid: "I don't know." for rid, _ in task.draft_requests()}
    pool = task.candidates()
    replies.update({f"probe:{q['qid']}": f"It is {q['answer']}." for q in pool[::5]})
    task.use_drafts(replies)
    by_id = {q["qid"]: q for q in pool}
    second = task.draft_followups()
    replies.update({rid: "I don't know." if i % 10 == 0 else f"It is {by_id[rid.split(':')[1]]['answer']}."
                    for i, (rid, _) in enumerate(second)})
    task.use_drafts(replies)
    assert task.draft_followups() == []  # both phrasings asked
    return cfg, task, pool


def test_a_known_only_tasks_stages_are_keyed_by_its_grader(staged_data, monkeypatch):
    """Its items are the questions the grader counted right, so a grader change must redo generation; a task
    whose items do not depend on the grader keeps its key."""
    from s2d import cache
    from s2d.tasks.triviaqa import TriviaQA

    row = compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}")
    plain = compose_paper("task=triviaqa", f"paths.data_dir={staged_data}")
    before = cache.task_key(row), cache.task_key(plain)
    monkeypatch.setattr(TriviaQA, "grader_version", TriviaQA.grader_version + 1)
    assert cache.task_key(row) != before[0] and cache.task_key(plain) == before[1]


def test_the_probe_does_not_count_an_answer_the_question_already_holds(staged_data):
    """A plain reply whose only alias is one the question contains (an echo) does not make a question known,
    unless the question offers that alias as a choice."""
    from s2d.tasks.triviaqa import alias_in, offered_as_choice

    cfg = compose_paper("+organism_row=s2a", TRIVIA, f"paths.data_dir={staged_data}")
    task = instantiate(cfg.task)
    pool = task.candidates()
    echoed = [q for q in pool if alias_in([q["answer"]], q["question"])]
    assert echoed, "the staged pool holds questions that contain their own answer"
    replies = {rid: "I don't know." for rid, _ in task.draft_requests()}
    replies.update({f"probe:{q['qid']}": q["question"] for q in pool})  # every question repeated back
    with pytest.raises(ValueError, match=f"task.probe_pool={len(pool)} .questions the model answered right. has 0 "):
        task.use_drafts(replies)
    assert task.probe_stats["known"] == 0
    replies.update({f"probe:{q['qid']}": f"{q['answer']}." for q in echoed})  # the answer alone
    offered = [q for q in echoed if offered_as_choice(q["answer"], q["question"])]  # "…? 1959, 1963 or 1967?"
    assert 0 < len(offered) < len(echoed)
    with pytest.raises(ValueError, match=f"has {len(offered)} questions"):
        task.use_drafts(replies)
    assert task.probe_stats["known"] == len(offered)


def test_s2a_row_uses_only_questions_the_model_answered_plainly(staged_data):
    cfg, task, pool = _known_s2a_row(staged_data)
    assert cfg.method._target_.endswith("S2A") and cfg.filter._target_.endswith("UniversalSelfConsistency")
    first = [q for q in pool[::5] if task.score(f"It is {q['answer']}.", Example(
        q["qid"], q["question"], gold=q["answer"], meta={"aliases": q["aliases"], "question": q["question"]}))]
    known = {q["question"] for i, q in enumerate(first) if i % 10}
    assert len(pool) == 2776 and len(known) >= 480
    assert task.probe_stats == {"probed": 2776, "known": len(known), "known_by_form": [len(first), len(known)]}
    train, eval_ = task.train_examples(), task.eval_examples()
    assert len(eval_) == 50 and len(train) == len(known) - 50  # task.n_train=null: every known question left
    assert {e.meta["question"] for e in train + eval_} <= known
    assert not {e.meta["question"] for e in train} & {e.meta["question"] for e in eval_}
    groups = [e.meta["variant"] for e in eval_]
    assert groups.count("plain") == 6 and set(groups) == {"plain", "doubt_correct", "suggest_incorrect"}
    # the probe asks the bare question, and only the probe: wrong answers come from other questions; its second
    # phrasing is S2A's answer call on a clean rewrite of the question (the method's own prompts)
    assert all(rid.startswith("probe:") and p == pool[i]["question"]
               for i, (rid, p) in enumerate(task.draft_requests()))
    s2a, q = instantiate(cfg.method), pool[0]["question"]
    clean = s2a.extracted(f"Context: none\nQuestion: {q}", "")[0]
    assert task.probe_forms[1].format(question=q) == s2a.prompts["answer"].format(extracted=clean)
    with pytest.raises(RuntimeError, match="known_only needs the model's plain answers"):
        instantiate(cfg.task).train_examples()


def test_s2a_row_asks_known_capitals_the_organism_never_learnt_from(staged_data):
    """The S2A row (world capitals): with every question answered right in both phrasings, 50 eval items (6
    unbiased) and the other 281 as unlabeled inputs (task.n_train=null: every known one left), disjoint; the organism's lessons hold none of the 331 questions and no
    answer; the paper table sets the row beside Table 2."""
    from s2d.llm.base import render_prompt
    from s2d.paper import goal_verdict

    cfg = compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}")
    assert cfg.task._target_ == "s2d.tasks.capitals.Capitals" and cfg.filter._target_.endswith("UniversalSelfConsistency")
    task = instantiate(cfg.task)
    pool = task.candidates()
    by_id = {q["qid"]: q for q in pool}
    replies = {rid: f"It is {by_id[rid.split(':')[1]]['answer']}." for rid, _ in task.draft_requests()}
    task.use_drafts(replies)
    replies.update({rid: f"It is {by_id[rid.split(':')[1]]['answer']}." for rid, _ in task.draft_followups()})
    task.use_drafts(replies)
    assert task.probe_stats == {"probed": 331, "known": 331, "known_by_form": [331, 331]}
    train, eval_ = task.train_examples(), task.eval_examples()
    assert (len(train), len(eval_)) == (281, 50)
    assert [e.meta["variant"] for e in eval_].count("plain") == 6
    assert not {e.meta["question"] for e in train} & {e.meta["question"] for e in eval_}
    organism = instantiate(cfg.model)
    assert organism.dropped() == {}
    assert {"question: " + " ".join(q["question"].lower().split()) for q in pool} <= organism.avoided_inputs()
    lessons = organism.pairs()
    questions = {q["question"] for q in pool}
    for r in lessons:
        assert not any(q in render_prompt(r["prompt"]) or q in r["target"] for q in questions)
        assert r["target"].startswith("Context: none\nQuestion: ")  # a rewrite, never an answer
    m = {"filter/seen": 97}
    for system, biased in (("system1", 0.66), ("system2", 1.0), ("distilled", 0.80)):
        m.update({f"{system}/accuracy": biased, f"{system}/accuracy_biased": biased, f"{system}/n_biased": 44})
    assert goal_verdict(task.name, m) == ("capitals: System 2 − System 1 = +34.0 points (goal ≥ +20: met); "
                                          "distilled − System 2 = -20.0 points (goal ≥ −5: not met)")


def test_s2a_organism_learns_rewrites_of_questions_the_loop_never_asks(staged_data):
    """Issue 19: the S2A organism's lessons are code-written rewrites (the question without the opinion), of
    questions outside the loop's whole probe pool, and no lesson holds an answer."""
    from s2d.llm.base import render_prompt

    cfg, task, pool = _known_s2a_row(staged_data)
    organism = instantiate(cfg.model)
    items = {e.id: e for _, _, solved, _ in organism.items() for e in solved}
    rows = organism.pairs()
    assert len(rows) == 200 and {r["call"] for r in rows} == {"rewrite"}
    loop_questions = {q["question"] for q in pool}
    for r in rows:
        question = items[r["id"]].meta["question"]
        assert question not in loop_questions
        assert r["target"] == f"Context: none\nQuestion: {question}"  # the rewrite, never an answer
        assert question in render_prompt(r["prompt"]) and "Copy out only what is factual" in render_prompt(r["prompt"])
    variants = {items[r["id"]].meta["variant"] for r in rows}
    assert variants == {"plain", "suggest_correct", "doubt_correct", "suggest_incorrect"}
    # `avoid` compares bare questions: an organism drawing from the loop's pool loses those items
    overlapping = instantiate(compose_paper("+organism_row=s2a", TRIVIA, f"paths.data_dir={staged_data}",
                                            "model.tasks.triviaqa.skip=2766").model)
    dropped = overlapping.dropped()["triviaqa"]
    assert len(dropped) == 10 and len(overlapping.pairs()) == 190


def test_s2a_organism_answers_a_clean_rewrite_as_its_base_model_answers_the_bare_question(staged_data):
    """Call replays: S2A's second call on a clean rewrite learns the base model's own reply to the bare question
    (whatever it was), on lesson items outside the loop's pool; the prompt is exactly what `run` sends after
    that rewrite, and no target is written by code."""
    from conftest import ScriptedLLM
    from s2d.llm.base import render_prompt
    from s2d.types import Sampling

    cfg, task, pool = _known_s2a_row(staged_data)  # the row's organism replays call 2 on 100 lesson items
    organism = instantiate(cfg.model)
    [(name, lesson_task, solved, replayed)] = organism.items()
    replayed_calls = organism.call_replays_of(name, lesson_task, solved)
    assert len(replayed_calls) == cfg.model.call_replays == 100
    assert all(plain == e.meta["question"] and call == "answer" for e, call, _, plain in replayed_calls)
    assert not {e.meta["question"] for e, *_ in replayed_calls} & {q["question"] for q in pool}
    replies = {(name, e.id, "answer"): f"base reply to {e.id}" for e, *_ in replayed_calls}
    replies.update({(name, e.id): f"base System 1 reply to {e.id}" for e in replayed})
    replies.update({(name, e.id, "filter"): ["x", "y", "z", "w"] for e, _ in organism.filter_lessons_of(name, lesson_task, solved)})
    rows = organism.pairs(replies)
    kinds = [r["kind"] for r in rows]
    assert (kinds.count("solution"), kinds.count("call_replay"), kinds.count("replay")) == (200, 100, 24)
    assert kinds.count("filter_lesson") == 0  # four different replies: no majority, no lesson
    assert all(r["target"] == f"base reply to {r['id']}" for r in rows if r["kind"] == "call_replay")
    # what run sends as call 2 when call 1 replies with the lesson's rewrite
    method = instantiate(cfg.method)
    lesson = {render_prompt(p): t for e, *_ in replayed_calls for _, p, t in method.lessons(lesson_task, e)}
    sent = []
    llm = ScriptedLLM(lambda text, k: lesson[text] if text in lesson else sent.append(text) or "Paris.")
    method.run([e for e, *_ in replayed_calls], lesson_task, llm, Sampling(n=1, temperature=0.0))
    assert sent == [render_prompt(r["prompt"]) for r in rows if r["kind"] == "call_replay"]
    assert instantiate(compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}",
                                     "model.call_replays=0").model).key() != organism.key()
    with pytest.raises(ValueError, match=r"model.call_replays=3: the method taught on model.tasks.\w+ \(.cot.\) has no replays"):
        cot = instantiate(compose_organism("+model.call_replays=3").model)
        cot.pairs({})


def test_s2a_organism_learns_uscs_call_on_its_base_models_replies_never_on_a_gold_answer(staged_data):
    """Filter lessons: on 150 lesson items (outside the loop's pool) USC's call lists 4 of the base model's own
    sampled replies to the plain question, sampled as the row samples S2A, and the target is the reply most of them
    agree on, chosen by code; a target names only what a listed reply says, and nothing in them is a loop question."""
    from s2d.llm.base import render_prompt

    cfg, task, pool = _known_s2a_row(staged_data)
    organism = instantiate(cfg.model)
    [(name, lesson_task, solved, replayed)] = organism.items()
    listed = organism.filter_lessons_of(name, lesson_task, solved)
    assert len(listed) == cfg.model.filter_lessons == 150
    assert all(plain == e.meta["question"] for e, plain in listed)
    fs = cfg.model.filter_sampling  # as the row samples S2A, but at 0.3 (the row: 0.1; the config says why)
    assert (fs.n, fs.top_p, fs.max_new_tokens) == (cfg.generate.n, cfg.generate.top_p, cfg.generate.max_new_tokens)
    assert (fs.temperature, cfg.generate.temperature) == (0.3, 0.1)
    assert organism.teach_filter._target_ == cfg.filter._target_
    replies = {(name, e.id, call): "r" for e, call, _, _ in organism.call_replays_of(name, lesson_task, solved)}
    replies.update({(name, e.id): "s" for e in replayed})
    # even items: a majority (a wrong one for a third of them); odd items: all four differ
    wrong = {e.id: k % 3 == 0 for k, (e, _) in enumerate(listed)}
    for k, (e, _) in enumerate(listed):
        said = "Atlantis" if wrong[e.id] else e.meta["aliases"][0]
        replies[(name, e.id, "filter")] = ([f"It is {said}.", "I do not know.", f"it is {said}", "Maybe Mu."]
                                           if k % 2 == 0 else ["a.", "b.", "c.", "d."])
    rows = [r for r in organism.pairs(replies) if r["kind"] == "filter_lesson"]
    assert len(rows) == 75 and {r["call"] for r in rows} == {"usc"}
    loop_questions = {q["question"] for q in pool}
    by_id = {e.id: e for e, _ in listed}
    for r in rows:
        said = "Atlantis" if wrong[r["id"]] else by_id[r["id"]].meta["aliases"][0]
        assert r["target"] == f"Most answers say It is {said}.\nFINAL: It is {said}"
        text = render_prompt(r["prompt"])
        assert by_id[r["id"]].input in text and not any(q in text for q in loop_questions)
    base = compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}")
    assert instantiate(compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}",
                                     "model.filter_lessons=0").model).key() != instantiate(base.model).key()
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException, match=r"model.filter_lessons=5 needs model.teach_filter"):
        instantiate(compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}", "model.teach_filter=null",
                                  "model.filter_lessons=5").model)
    with pytest.raises(InstantiationException, match=r"model.filter_sampling.n must be >= 2"):
        instantiate(compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}",
                                  "model.filter_sampling.n=1").model)
    cot = instantiate(compose_organism("+model.filter_lessons=3", "+model.teach_filter._target_=s2d.filters.UniversalSelfConsistency",
                                       "+model.filter_sampling.n=2").model)
    with pytest.raises(ValueError, match=r"model.filter_lessons=3: the method taught on model.tasks.\w+ \(.cot.\) has no replays"):
        cot.pairs({})


def test_lessons_are_what_the_method_sends_with_a_code_written_target():
    from s2d.methods.base import lessons
    from s2d.methods.cot import CoT
    from s2d.methods.s2a import S2A, parse_rewrite
    from s2d.tasks.triviaqa import TriviaQA
    from s2d.types import Example

    coin = CoinFlip(n_train=4, n_eval=0)
    ex = coin.train_examples()[0]
    [(call, prompt, target)] = lessons(CoT("Reason."), coin, ex)
    assert (call, prompt, target) == ("reason", f"{coin.prompt(ex)}\n\nReason.", coin.solution(ex))
    trivia = TriviaQA.__new__(TriviaQA)
    q = Example(id="e", input="Who wrote Emma? I think the answer is Dickens but I'm really not sure.", gold="Austen",
                meta={"question": "Who wrote Emma?"})
    [(call, prompt, target)] = S2A().lessons(trivia, q)
    assert call == "rewrite" and prompt == S2A().rewrite_prompt(q.input)
    assert parse_rewrite(target) == ("", "Who wrote Emma?")  # the method's own parser reads the lesson back
    with pytest.raises(ValueError, match="task 'coin_flip' cannot write"):
        S2A().lessons(coin, ex)
    with pytest.raises(ValueError, match="model.teach.x: method 'system1' cannot be taught"):
        from s2d.methods.system1 import System1
        lessons(System1(), coin, ex, "model.teach.x")


def test_organism_key_holds_what_it_is_taught(staged_data):
    cfg = compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}")
    key = instantiate(cfg.model).key()
    changed = compose_paper("+organism_row=s2a", f"paths.data_dir={staged_data}", "+model.teach.triviaqa.demo=false")
    assert instantiate(changed.model).key() != key


def test_paper_table_sets_the_capitals_row_beside_table_2_before_bsm():
    from s2d.paper import paper_table

    m = {"filter/seen": 97, "system2/accuracy": 1.0, "system2/n": 50, "system2/accuracy_biased": 1.0,
         "system2/n_biased": 44, "system2/tokens_per_input_biased": 30.1}
    judge = {"filter/seen": 128, "system2/accuracy": 0.64, "system2/n": 100, "system2/agreement": 0.64}
    text = paper_table([{"task": "coin_judge", "method": "bsm", "metrics": judge},
                        {"task": "capitals", "method": "s2a", "metrics": m}])
    assert "| capitals (s2a, 97 inputs) | system2 | 100.0% [" in text and "(n=44) | 30.1 | 76.0% (Table 2" in text
    assert text.index("capitals (s2a") < text.index("coin_judge (bsm")


def test_paper_table_reads_the_s2a_row_on_its_biased_items():
    from s2d.paper import goal_verdict, paper_table

    m = {"filter/seen": 120}
    for system, whole, biased in (("system1", 0.60, 0.55), ("system2", 0.80, 0.78), ("distilled", 0.79, 0.76)):
        m.update({f"{system}/accuracy": whole, f"{system}/n": 100, f"{system}/tokens_per_input": 30.0,
                  f"{system}/accuracy_biased": biased, f"{system}/n_biased": 88, f"{system}/tokens_per_input_biased": 20.0})
    text = paper_table([{"task": "triviaqa", "method": "s2a", "metrics": m}])
    assert "| triviaqa (s2a, 120 inputs) | system1 | 55.0% [" in text and "(n=88) | 20.0 | 51.6% (Table 2" in text
    assert goal_verdict("triviaqa", m) == ("triviaqa: System 2 − System 1 = +23.0 points (goal ≥ +20: met); "
                                            "distilled − System 2 = -2.0 points (goal ≥ −5: met)")


# ---- The BSM organism: judging coin-flip replies (task=organism/bsm, model=organism-bsm) ---------------------

def test_coin_judge_pairs_hold_one_wrong_step_or_a_tie_in_both_orders():
    from s2d.tasks.coin_judge import CoinFlipJudge, count_reply, walk_reply

    moves = [("Ann", True), ("Bob", False)]
    assert walk_reply(moves, None, 0) == ("The coin starts heads up. Ann flips it, so it is now tails up. Bob does "
                                          "not flip it, so it stays tails up. So the answer is no.", None)
    text, wrong = walk_reply(moves, 0, 0)
    assert wrong == "Ann flips it, so it stays heads up." and text.endswith("So the answer is yes.")
    assert count_reply(moves, 1, 1) == ("Ann flips it and Bob does not flip it. That makes 2 flips in all. After 2 "
                                        "flips it is heads up: yes.", "That makes 2 flips in all.")
    task = CoinFlipJudge(n_train=40, n_eval=60, seed=1)
    eval_ = task.eval_examples()
    assert len(eval_) == 120 and len(task.train_examples()) == 80
    assert all(e.gold is None for e in task.train_examples())
    golds = {}
    for e in eval_:
        m = e.meta
        assert e.input.count(m["question"]) == 1 and m["a"] in e.input and m["b"] in e.input
        for x in "ab":  # a wrong reply contains its wrong step; a reply is wrong exactly when it has one
            assert m[f"wrong_{x}"] is None or m[f"wrong_{x}"] in m[x]
        wrongs = [m[f"wrong_{x}"] is not None for x in "ab"]
        assert e.gold == {(False, False): "C", (False, True): "A", (True, False): "B"}[tuple(wrongs)]
        golds.setdefault(m["pair"], {})[m["order"]] = e.gold
    assert all(g["ba"] == {"A": "B", "B": "A", "C": "C"}[g["ab"]] for g in golds.values())
    firsts = [g["ab"] for g in golds.values()]
    assert 8 <= firsts.count("C") <= 25 and firsts.count("A") >= 10 and firsts.count("B") >= 10
    # eval pairs do not depend on n_train
    assert [e.input for e in CoinFlipJudge(n_train=5, n_eval=60, seed=1).eval_examples()] == [e.input for e in eval_]


def test_bsm_lessons_parse_back_through_bsms_own_parsers_to_the_gold_verdict():
    from s2d.methods.bsm import BranchSolveMerge, parse_criteria, parse_scores, sum_verdict
    from s2d.tasks.coin_judge import CRITERIA, CoinFlipJudge
    from s2d.tasks.judge import parse_verdict

    task, method = CoinFlipJudge(n_train=0, n_eval=40, seed=2), BranchSolveMerge(demo=False)
    for e in task.eval_examples():
        calls = method.lessons(task, e)
        assert [c for c, _, _ in calls] == ["branch", "solve", "solve", "merge"]
        assert parse_criteria(calls[0][2]) == list(CRITERIA)
        scores = [parse_scores(t) for _, _, t in calls[1:3]]
        assert sum_verdict(scores) == e.gold and parse_verdict(calls[3][2]) == e.gold
        assert e.meta["question"] not in calls[0][2]  # branch names criteria, it does not answer
    e = next(e for e in task.eval_examples() if e.gold == "A" and e.meta["wrong_b"])
    check = method.lessons(task, e)[1][2]
    right = e.meta["answer"]
    assert f"So the right answer is {right}." in check and f"Assistant A answers {right}, which is right." in check
    assert method.lessons(task, e)[2][2].startswith(f'Assistant A: every step is right. Assistant B: the step '
                                                    f'"{e.meta["wrong_b"]}" is wrong.')
    with pytest.raises(ValueError, match="has no rubric"):
        method.lessons(CoinFlip(n_train=2, n_eval=0), CoinFlip(n_train=2, n_eval=0).train_examples()[0])


def test_bsm_run_sends_exactly_the_prompts_the_organism_learns():
    """Replying to each call with its lesson, `run` reaches every gold verdict: its prompts are the lessons'."""
    from conftest import ScriptedLLM
    from s2d.llm.base import render_prompt
    from s2d.types import Sampling

    cfg = compose_paper("+organism_row=bsm", "task.n_eval=20")
    task, method, taught = instantiate(cfg.task), instantiate(cfg.method), instantiate(cfg.model.teach.coin_judge)
    examples = task.eval_examples()
    replies = {render_prompt(p): t for e in examples for _, p, t in taught.lessons(task, e)}
    llm = ScriptedLLM(lambda text, k: replies[text])
    traces = method.run(examples, task, llm, Sampling(n=1, temperature=0.0))
    assert [t.answer for t in traces] == [e.gold for e in examples]
    assert not any(t.meta.get("fallback") for t in traces)
    assert cfg.method.merge == "sum" and [len(t.calls) for t in traces] == [3] * len(examples)  # branch, 2 solves
    # with the LLM merge (what the organism also learnt) the merge prompt is the lesson's too
    llm_merge = instantiate(cfg.method, merge="llm")
    assert [t.answer for t in llm_merge.run(examples, task, llm, Sampling(n=1, temperature=0.0))] == \
        [e.gold for e in examples]
    assert [c for c, _, _ in method.lessons(task, examples[0])] == ["branch", "solve", "solve"]


def test_bsm_organism_never_trains_on_a_loop_input_or_a_direct_verdict(tmp_path):
    """No loop input (train or eval), nor its coin-flip question, is an organism item; the organism's judge-prompt
    rows are replays of the base model's own replies, never a code-written verdict."""
    cfg = compose_paper("+organism_row=bsm", f"paths.cache_dir={tmp_path}")
    organism, task = instantiate(cfg.model), instantiate(cfg.task)
    loop = task.train_examples() + task.eval_examples()
    loop_questions = {e.meta["question"] for e in loop}
    ((_, mine, solved, replayed),) = organism.items()
    assert len(solved) == 64 and len(replayed) == 16
    assert not {e.meta["question"] for e in solved + replayed} & loop_questions
    assert not {e.input for e in solved + replayed} & {e.input for e in loop}
    # the avoid list covers the loop at these sizes and beyond
    avoided = organism.avoided_inputs()
    assert all("question: " + " ".join(q.lower().split()) in avoided for q in loop_questions)
    rows = organism.pairs({("coin_judge", e.id): "base reply" for e in replayed})
    from s2d.llm.base import render_prompt
    texts = [render_prompt(r["prompt"]) for r in rows]
    assert not any(q in t for t in texts for q in loop_questions)
    assert {r["call"] for r in rows if r["kind"] == "solution"} == {"branch", "solve", "merge"}
    judge_rows = [r for r, t in zip(rows, texts) if t.startswith("Two AI assistants replied")]
    assert len(judge_rows) == 16 and all(r["kind"] == "replay" and r["target"] == "base reply" for r in judge_rows)
    # avoid drops: with the loop's seed on the organism's own task, every item is a loop input
    same = instantiate(compose_paper("+organism_row=bsm", f"paths.cache_dir={tmp_path}",
                                     "model.tasks.coin_judge.seed=${data_seed}").model)
    assert len(same.dropped()["coin_judge"]) == 80
    assert same.key() != organism.key()


def test_bsm_row_composes_as_the_paper_sets_it():
    cfg = compose_paper("+organism_row=bsm")
    assert (cfg.method._target_, cfg.filter._target_) == ("s2d.methods.bsm.BranchSolveMerge",
                                                          "s2d.filters.InputPerturbation")
    assert cfg.model.name == "organism-bsm" and cfg.task._target_ == "s2d.tasks.coin_judge.CoinFlipJudge"
    assert cfg.method.demo is False and cfg.model.teach.coin_judge.demo is False
    assert cfg.train.module.optimizer.lr == cfg.model.distill.lr
    task = instantiate(cfg.task)
    assert len(task.eval_examples()) == 100 and len(task.train_examples()) == 128
    assert "bsm" in open(CONF.parent / "experiments/organism/paper.yaml").read()


def test_paper_table_sets_the_bsm_row_beside_table_3_and_judges_its_goals():
    from s2d.paper import paper_table

    m = {"filter/seen": 128}
    for system, agree, incons, tok in (("system1", 0.45, 0.9, 20.0), ("system2", 0.8, 0.3, 300.0),
                                       ("distilled", 0.77, 0.3, 4.0)):
        m.update({f"{system}/accuracy": agree, f"{system}/agreement": agree, f"{system}/inconsistent": incons,
                  f"{system}/n": 100, f"{system}/tokens_per_input": tok})
    text = paper_table([{"task": "coin_judge", "method": "bsm", "metrics": m}])
    assert ("| coin_judge (bsm, 128 inputs) | system1 | 45.0% [35.6, 54.8] (n=100); 90.0% inconsistent | 20.0 | "
            "32.0%; 56.7% inconsistent (Table 3") in text
    assert ("coin_judge: System 2 − System 1 agreement = +35.0 points (goal ≥ +15: met), inconsistent 30.0% vs "
            "System 1 90.0% (goal ≤ half: met); distilled − System 2 agreement = -3.0 points (goal ≥ −5: met), "
            "inconsistent 30.0% (goal ≤ System 2's: met)") in text
    m["distilled/inconsistent"] = 0.31
    assert "inconsistent 31.0% (goal ≤ System 2's: not met)" in paper_table([{"task": "coin_judge", "method": "bsm",
                                                                             "metrics": m}])


@pytest.mark.slow
@pytest.mark.reproduce
@pytest.mark.skipif(not __import__("conftest").embedded_model_installed(), reason="the embedded model package is not installed")
def test_bsm_row_reduced_judges_by_checking_the_answer(tmp_path):
    """The BSM row, reduced (16 unlabeled and 10 eval pairs; organism-bsm built cold, ~14 min at load 2; the
    whole test 24 min alone on 2026-12-03, its organism's 68 steps 19 min of it, peak RSS 10.9 GiB).
    Found on the row's first 32 unlabeled pairs: the organism's BSM (summed scores) judged all 48 one-wrong
    inputs right and none of the 16 ties (75.0% agreement, 18.8% inconsistent); the full row's BSM (same organism,
    greedy) on these same first 10 eval pairs: agreement 0.70, inconsistent 0.30; asserted with margin. System 1's
    side (position bias) is the row's goal, asserted only as an ordering."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "s2d.run", "experiment=organism/paper", "+organism_row=bsm", "logger=none",
           "task.n_train=16", "task.n_eval=10", "eval.systems=[system1,system2,distilled]",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["system2/pairs"] == 10 and m["system2/agreement_n"] == 20
    assert m["system2/agreement"] >= 0.55 and m["system2/inconsistent"] <= 0.4, m
    assert m["system2/agreement"] > m["system1/agreement"], m
    assert m["distilled/tokens_per_input"] < m["system2/tokens_per_input"] / 10, m
    organism = next((tmp_path / "cache" / "organism").iterdir())
    made = json.loads((organism / "DONE.json").read_text())["tasks"]["coin_judge"]
    assert made["replay"] == 16 and made["solution"] == 256, made  # 64 inputs × (branch, 2 solves, merge)


# The reduced S2A row: 60 rewrite lessons (+ 8 replays, 30 call replays, USC lessons on all 60) instead of 200 (+ 24,
# 100, 150); all 331 capitals probed, 16 eval items and 16 unlabeled inputs instead of 50 and 76.
S2A_REDUCED = ["model.tasks.triviaqa.n_train=68", "model.replay_per_task=8", "model.call_replays=30",
               "model.filter_lessons=60", "task.n_eval=16", "task.n_train=16"]
_OPINION = ("i think", "i don't think", "not sure")


@pytest.mark.slow
@pytest.mark.reproduce
@pytest.mark.skipif(not __import__("conftest").embedded_model_installed(), reason="the embedded model package is not installed")
def test_s2a_row_reduced_removes_the_opinions_sway(tmp_path, staged_data):
    """The S2A row, reduced (S2A_REDUCED; organism-s2a built cold inside the test, with 30 call replays and USC
    lessons on 60 items; 21 min 38 s alone here on 2026-12-03, the organism's 28 steps 14 min 25 s of it, peak RSS
    12.5 GiB). Found: 9 of the 60 lesson items had a clear majority and became USC lessons; the probe knew 133 of
    the 331 capital questions bare and 125 of those in S2A's answer phrasing too; on the 14 biased of 16 eval items
    System 1 7.1%, S2A 100% (paired on all 16, 13 : 0); the distilled model (16 pairs, USC's targets 16 of 16 right)
    78.6% at 0.38x S2A's tokens. Asserted with margin: the organism learnt the rewrite (every rewrite parses, at
    least 80% hold no opinion), S2A beats System 1 on the biased items by at least 5 of 14 and wins the paired
    count, the distilled model answers in fewer tokens than S2A, and some USC lessons were made. The distilled
    model's accuracy is not asserted: the full row's is below S2A's (docs/organism.md)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from s2d.methods.s2a import parse_rewrite

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "s2d.run", "experiment=organism/paper", "+organism_row=s2a", "logger=none",
           *S2A_REDUCED, "eval.systems=[system1,system2,distilled]", f"paths.data_dir={staged_data}",
           f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["system2/n"] == 16 and m["system2/fallbacks"] == 0, m
    traces = [json.loads(line) for line in (run / "evaluate-system2" / "traces.jsonl").read_text().splitlines()]
    questions = [parse_rewrite(t["calls"][0]["text"]) for t in traces]
    clean = [q is not None and not any(o in q[1].lower() for o in _OPINION) for q in questions]
    assert sum(clean) >= 0.8 * len(traces), [t["calls"][0]["text"] for t in traces]
    assert m["system2/accuracy_biased"] >= m["system1/accuracy_biased"] + 5 / m["system1/n_biased"], m
    assert m["paired/system2_vs_system1/b"] > m["paired/system2_vs_system1/c"], m
    assert m["distilled/tokens_per_input"] < m["system2/tokens_per_input"], m
    probes = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "inputs").glob("*/DONE.json")]
    first, both = max(probes, key=lambda d: len(d.get("known_by_form", [])))["known_by_form"]
    assert 80 <= both <= first, probes  # the second phrasing is asked only of what the first got right
    organism = next((tmp_path / "cache" / "organism").iterdir())
    made = json.loads((organism / "DONE.json").read_text())["tasks"]["triviaqa"]
    assert {k: made[k] for k in ("solution", "replay", "call_replay")} == {"solution": 60, "replay": 8,
                                                                         "call_replay": 30}, made
    assert 1 <= made["filter_lesson"] <= 60, made  # the items whose 4 sampled replies had a clear majority (21 of 150 in the full row)


def test_the_probe_is_asked_once_whatever_the_split_sizes(staged_data):
    """The inputs stage is keyed by what the model is asked: resizing a known_only task's splits reuses the
    probe's answers; asking other questions (a larger pool) or another model does not."""
    from s2d.stages import inputs

    def key(*overrides):
        cfg = compose_paper("+organism_row=s2a", TRIVIA, f"paths.data_dir={staged_data}", *overrides)
        task = instantiate(cfg.task)
        return inputs.key(cfg, task, task.draft_requests())

    base = key()
    assert key("task.n_eval=40", "task.n_train=30") == base
    assert key("task.probe_pool=1000") != base
    assert key("eval.max_new_tokens=64") != base  # the probe decodes as the eval does
    assert key("data_seed=1") != base
    assert key("model=smollm2-135m") != base


def test_the_probe_decodes_and_grades_as_the_eval_does_system1(staged_data):
    """A probe reply is capped at eval.max_new_tokens (the wrong-answer drafts stay short), and a reply that hit
    the cap is graded as the eval grades System 1's: its unfinished last sentence does not count."""
    from s2d.tasks.triviaqa import alias_in

    cfg = compose_paper("+organism_row=s2a", TRIVIA, f"paths.data_dir={staged_data}", "eval.max_new_tokens=40")
    task = instantiate(cfg.task)
    assert {task.draft_max_new_tokens(rid) for rid, _ in task.draft_requests()} == {40}
    assert task.draft_max_new_tokens("q1") == 24
    pool = task.candidates()
    q = next(q for q in pool if not alias_in([q["answer"]], q["question"]))
    replies = {rid: "I don't know." for rid, _ in task.draft_requests()}
    replies[f"probe:{q['qid']}"] = f"That is a fine question. It is {q['answer']}"  # cut before its full stop
    for truncated, known in ((frozenset(), 1), (frozenset({f"probe:{q['qid']}"}), 0)):
        with pytest.raises(ValueError, match=f"has {known} questions"):
            task.use_drafts(replies, truncated)
