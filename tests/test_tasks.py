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


@pytest.mark.parametrize(
    "text, answer",
    [
        ('The answer is "ne".', "ne"),
        ("Final answer: rb", "rb"),
        ('"n" + "e" = "ne". So the answer is "ne"', "ne"),
        ("The last letters are r and b, so the answer is: RB.", "rb"),
        ('Concatenating them gives "Rb".', "rb"),
        ("Edgar Bob.", None),
        ("", None),
    ],
)
def test_last_letter_extraction(text, answer):
    assert LastLetter().extract(text) == answer


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


@pytest.mark.parametrize(
    "text, answer",
    [
        ("Yes, the coin is still heads up.", "yes"),
        ("No. Ann flipped it once.", "no"),
        ("Ann flips it, so it is tails. Final answer: No", "no"),
        ("The answer is yes.", "yes"),
        ("The coin shows tails.", None),
    ],
)
def test_coin_flip_extraction(text, answer):
    assert CoinFlip().extract(text) == answer


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


def test_answer_marker_variants():
    assert LastLetter().extract('The answer to this question is: "ab".') == "ab"
    assert CoinFlip().extract("The answer to the puzzle would be no, because Ann flipped it.") == "no"
