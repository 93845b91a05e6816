"""Tasks: seeded, hand-checked items; answer extraction and scoring on hand-written outputs."""

import pytest

from s2d.tasks.coin_flip import CoinFlip
from s2d.tasks.last_letter import LastLetter
from s2d.types import Example


def test_last_letter_items_are_seeded_and_correct():
    a = LastLetter(n_train=5, n_eval=3, seed=7)
    b = LastLetter(n_train=5, n_eval=3, seed=7)
    assert [e.input for e in a.train_examples()] == [e.input for e in b.train_examples()]
    assert len(a.train_examples()) == 5 and len(a.eval_examples()) == 3
    assert [e.input for e in LastLetter(n_train=5, n_eval=3, seed=8).eval_examples()] != [
        e.input for e in a.eval_examples()
    ]
    for e in a.train_examples() + a.eval_examples():
        words = e.input.split('"')[1].split()
        assert len(words) == 2
        assert e.gold == "".join(w[-1] for w in words).lower()
    assert not {e.input for e in a.train_examples()} & {e.input for e in a.eval_examples()}


def test_last_letter_hand_checked():
    ex = LastLetter.make("x", ["Edgar", "Bob"])
    assert ex.input == 'Take the last letters of the words in "Edgar Bob" and concatenate them.'
    assert ex.gold == "rb"
    assert LastLetter.make("y", ["Annette", "Erin", "Marisol", "Esperanza"]).gold == "enla"


def test_last_letter_scoring_and_format():
    t = LastLetter()
    ex = Example("x", "q", gold="ne")
    assert t.score("ne", ex) and not t.score("en", ex) and not t.score(None, ex)
    assert t.extract(t.format_answer("ne")) == "ne"


def test_coin_flip_items_follow_parity():
    ex = CoinFlip.make("x", ["Ann", "Bob"], [True, False])
    assert ex.input == "A coin is heads up. Ann flips the coin. Bob does not flip the coin. Is the coin still heads up?"
    assert ex.gold == "no"
    assert CoinFlip.make("x", ["Ann", "Bob"], [True, True]).gold == "yes"
    assert CoinFlip.make("x", ["Ann", "Bob"], [False, False]).gold == "yes"
    t = CoinFlip(n_train=20, n_eval=10, seed=1)
    for e in t.train_examples() + t.eval_examples():
        assert e.gold == ("no" if e.input.count(" flips the coin.") % 2 else "yes")


def test_rar_files_as_eval(staged_data):
    t = LastLetter(n_train=10, n_eval=219, eval_path="rephrase_and_respond/last_letter_concatenation_gpt-4.json",
                   data_dir=str(staged_data))
    ev = t.eval_examples()
    assert len(ev) == 219
    assert ev[0].input == 'Take the last letters of the words in "Shannon Alejandro" and concatenate them.'
    assert ev[0].gold == "no"
    c = CoinFlip(n_train=10, n_eval=1333, eval_path="rephrase_and_respond/coin_val.json", data_dir=str(staged_data))
    ev = c.eval_examples()
    assert len(ev) == 1333
    assert sum(e.gold == "yes" for e in ev) == 667
    assert ev[0].input == ("A coin is heads up. hiram does not flip the coin. nicoletto flips the coin. "
                           "Is the coin still heads up?")


def test_missing_eval_file_names_the_key(tmp_path):
    t = LastLetter(n_train=1, n_eval=1, eval_path="nope.json", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="task.eval_path='nope.json'"):
        t.eval_examples()


def _words(examples):
    return {w.lower() for e in examples for w in e.input.split('"')[1].split()}


@pytest.mark.parametrize("n_train", [200, 1000])
def test_last_letter_splits_share_no_word(n_train):
    # the old draw (297 names with reuse) put 312 of 400 eval word slots into training at 200/200
    task = LastLetter(n_train=n_train, n_eval=200, seed=0)
    train, eval_ = task.train_examples(), task.eval_examples()
    assert len(train) == n_train and len(eval_) == 200
    assert not _words(train) & _words(eval_)
    # the paper's construction: every word used once (1,200 unique words for 600 items)
    assert len(_words(eval_)) == 400 and len(_words(train)) == 2 * n_train
    assert task.split_stats() == {"overlap_words": 0, "train_words": 2 * n_train, "eval_words": 400,
                                  "overlap_items": 0}


def test_last_letter_words_come_from_the_census_lists():
    from s2d.tasks.base import census_names

    names = census_names()
    assert len(names) == 5163 and names[:3] == ["Aaron", "Abbey", "Abbie"]  # 1,219 + 4,275 rows, 331 in both
    assert _words(LastLetter(n_train=50, n_eval=50).train_examples()) <= {n.lower() for n in names}


def test_last_letter_eval_items_do_not_depend_on_n_train():
    small, large = LastLetter(n_train=10, n_eval=20, seed=3), LastLetter(n_train=3000, n_eval=20, seed=3)
    assert [e.input for e in small.eval_examples()] == [e.input for e in large.eval_examples()]
    # past the 5,123 words of the train pool words repeat inside training, never an input, never an eval word
    train = large.train_examples()
    assert len({e.input for e in train}) == 3000 and not _words(train) & _words(large.eval_examples())


def test_last_letter_train_avoids_the_words_of_an_eval_file(staged_data):
    task = LastLetter(n_train=500, n_eval=200, eval_path="rephrase_and_respond/last_letter_concatenation_gpt-4.json",
                      data_dir=str(staged_data))
    assert task.split_stats()["overlap_words"] == 0 and len(task.train_examples()) == 500


def test_coin_flip_eval_file_items_never_train(staged_data):
    task = CoinFlip(n_train=300, n_eval=1333, eval_path="rephrase_and_respond/coin_val.json", data_dir=str(staged_data))
    assert len(task.eval_examples()) == 1333
    assert task.split_stats()["overlap_items"] == 0
    synth = CoinFlip(n_train=300, n_eval=200)
    assert synth.split_stats() == {"overlap_items": 0, "train_dropped_as_eval": 0}


def test_capitals_ask_each_country_both_ways_and_grade_every_gold_answer_right():
    """The S2A row's questions (s2d/tasks/capitals.txt): golden records, the grader counts each gold answer (no
    question holds its own answer), and the task reads only its own table."""
    from s2d.tasks.capitals import Capitals, capital_records

    rows = capital_records()
    task = Capitals(n_train=0, n_eval=0)
    qs = [task.parse_row(r, f"record {i}") for i, r in enumerate(rows)]
    assert len(qs) == 331 and len({q["question"] for q in qs}) == 331
    assert {"question": "What is the capital of Australia?", "answer": "Canberra", "aliases": ["Canberra"]} in qs
    assert {"question": "Kyiv is the capital of which country?", "answer": "Ukraine", "aliases": ["Ukraine"]} in qs
    assert {"question": "What is the capital of Ukraine?", "answer": "Kyiv", "aliases": ["Kyiv", "Kiev"]} in qs
    bolivia = next(q for q in qs if q["question"] == "What is the capital of Bolivia?")
    assert bolivia["aliases"] == ["Sucre", "La Paz"]
    # a question holding its answer could never be graded right: left out
    assert not [q for q in qs if "Monaco" in q["question"] or q["question"].startswith("Kuwait City")]
    assert "What is the capital of Kuwait?" in {q["question"] for q in qs}
    for q in qs:
        ex = Example(id="x", input=q["question"], gold=q["answer"],
                     meta={"aliases": q["aliases"], "question": q["question"]})
        assert task.score(task.extract(f"The answer is {q['answer']}."), ex), q
    usa = next(q for q in qs if q["question"] == "What is the capital of United States?")
    ex = Example(id="x", input=usa["question"], gold=usa["answer"], meta={"aliases": usa["aliases"], "question": usa["question"]})
    assert task.score("It is Washington, D.C.", ex) and not task.score("It is New York.", ex)
    with pytest.raises(ValueError, match=r"task.path: the capitals task reads s2d/tasks/capitals.txt"):
        Capitals(path="triviaqa/triviaqa_sm_sub.jsonl")
