"""Golden tables for every task's grader: hand-written replies and the answer a careful reader takes from
each. The rule (s2d/tasks/grading.py): the last answer marker counts, the answer inside it, hedges and
contradictions are unparsed (None), a reply cut at the token cap counts only if its marker line was
finished. Read each table top to bottom: the comment says what the row checks."""

import pytest

from s2d.tasks.coin_flip import CoinFlip
from s2d.tasks.gsm8k import GSM8k
from s2d.tasks.judge import PairTask
from s2d.tasks.last_letter import LastLetter
from s2d.tasks.multiplication import Multiplication
from s2d.tasks.triviaqa import TriviaQA, offered_as_choice
from s2d.types import Example

# ---- last letter (gold in the comments is what the reply commits to, right or wrong) -----------------------
LAST_LETTER = [
    # reply                                                                       answer
    ('The answer is "ne".',                                                        "ne"),    # plain marker, quoted
    ("Final answer: rb",                                                           "rb"),    # plain marker, bare
    ("Final answer: RB",                                                           "rb"),    # upper case
    ("Final answer: The concatenation is ey",                                      "ey"),    # the answer inside, not "the"
    ("Final answer: e y",                                                          "ey"),    # spaced letters
    ("Final answer: e-y.",                                                         "ey"),    # hyphenated letters
    ('Final answer: "e y"',                                                        "ey"),    # spaced letters in quotes
    ("Final answer: e, y",                                                         "ey"),    # comma-separated letters
    ("Final answer: ey (Kate → e, Molly → y)",                                     "ey"),    # parenthetical ignored
    ("Final answer: e + y = ey",                                                   "ey"),    # worked line: after "="
    ("Final answer: the letters e and y",                                          "ey"),    # letters joined by "and"
    ("Answer: ye\nKate ends in e and Molly in y, so it is ey.\nFinal answer: ey",  "ey"),    # "Answer:" opening, then a second marker
    ("Final answer: ye\nWait, Kate comes first.\nFinal answer: ey",                "ey"),    # self-correction: the last marker
    ("The result is ly. No: the answer is ey.",                                    "ey"),    # two markers in one line
    ("Final answer: ey or ye",                                                     None),    # hedge
    ("Final answer: either ey or ye",                                              None),    # hedge
    ('Final answer: "ey" or "ye"',                                                 None),    # hedge in quotes
    ("Kate's e and Molly's y give",                                                None),    # apostrophes are not quotes
    ("Final answer:\ney",                                                          "ey"),    # the answer on the next line
    ("ey",                                                                         "ey"),    # bare reply, no marker
    ("EY.",                                                                        "ey"),    # bare reply, upper case
    ('Concatenating them gives "Rb".',                                             "rb"),    # quoted, no marker
    ("The last letters are e and y, so joined they make ey.",                      "ey"),    # no marker: pointer in the last sentence
    ('Take the last letters of the words in "Kate Molly" and concatenate them.',   None),    # echoed question
    ("Edgar Bob.",                                                                 None),    # echoed names
    ("",                                                                           None),    # empty reply
    ('The answer to this question is: "ab".',                                      "ab"),    # long marker form
    ("Joined: so.\nFinal answer: so",                                               "so"),    # an answer that is also a word
    ("Final answer: it",                                                           "it"),
]


@pytest.mark.parametrize("text, answer", LAST_LETTER)
def test_last_letter_golden(text, answer):
    assert LastLetter().extract(text) == answer


@pytest.mark.parametrize("text, truncated, answer", [
    ("Kate: K-a-t-e, last letter e.\nMolly: M-o-l-l-y, last letter y.\nJoined: ey.\nFinal answer: ey\n", True, "ey"),
    ("Kate: K-a-t-e, last letter e.\nMolly: M-o-l", True, None),          # cut before any marker
    ("Kate ends in e.\nFinal answer: e", True, None),                     # the marker line itself was cut
    ("Final answer: ey", False, "ey"),
])
def test_last_letter_truncated(text, truncated, answer):
    assert LastLetter().extract(text, truncated=truncated) == answer


# ---- coin flip ------------------------------------------------------------------------------------------------
COIN_FLIP = [
    ("Yes, the coin is still heads up.",                                       "yes"),  # leading answer
    ("No. Ann flipped it once.",                                               "no"),
    ("Ann flips it, so it is tails. Final answer: No",                         "no"),   # marker, capitalised
    ("The answer is yes.",                                                     "yes"),
    ("Final answer: no\nActually Bob flips it back.\nFinal answer: yes",       "yes"),  # self-correction
    ("Answer: yes\nAnn flips, Bob flips: two flips.\nFinal answer: yes",       "yes"),  # "Answer:" opening
    ("No one flips the coin, so it is still heads up.",                        "yes"),  # "No one" is not "no"
    ("The coin is no longer heads up.",                                        "no"),   # "no longer" → side → no
    ("Final answer: yes and no",                                               None),   # hedge
    ("Final answer: either yes or no",                                         None),   # hedge
    ("It could be yes or no.",                                                 None),   # hedge without marker
    ("Final answer: No, the coin is tails up.",                                "no"),
    ("Final answer: Yes (heads up)",                                           "yes"),  # parenthetical
    ("Final answer: The coin is still heads up.",                              "yes"),  # the side, no yes/no
    ("Final answer: tails",                                                    "no"),
    ("The coin starts heads up. Ann flips it: tails. Bob flips it: heads.\nSo yes.", "yes"),  # last sentence
    ("Yes. Wait: Ann flips it once, so it ends tails. So no.",                 "no"),   # last sentence wins
    ("Is the coin still heads up? Yes or no?",                                 None),   # echoed question
    ("The coin shows tails.",                                                  "no"),
    ("Nobody knows.",                                                          None),
    ("",                                                                       None),
    ("The answer to the puzzle would be no, because Ann flipped it.",          "no"),   # long marker
    ("FINAL ANSWER: YES",                                                      "yes"),  # upper case
    ("Final answer:\nno",                                                      "no"),   # next line
    ("yes",                                                                    "yes"),  # bare
    ("Final answer: no one flipped it, so yes",                                "yes"),
]


@pytest.mark.parametrize("text, answer", COIN_FLIP)
def test_coin_flip_golden(text, answer):
    assert CoinFlip().extract(text) == answer


def test_coin_flip_truncated_counts_only_a_finished_marker_line():
    assert CoinFlip().extract("Ann flips: tails.\nFinal answer: no\nBob", truncated=True) == "no"
    assert CoinFlip().extract("Ann flips: tails.\nBob does not flip. So n", truncated=True) is None
    assert CoinFlip().extract("Yes, it is", truncated=True) is None


# ---- GSM8k (and multiplication, which uses the same number rule) ------------------------------------------------
GSM8K = [
    ("Final answer: 18",                                                       "18"),
    ("Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\nFinal answer: 14 apples",       "14"),   # unit after the number
    ("She earns $1,200.50 a week.",                                            "1200.5"),  # currency, no marker: last number
    ("Final answer: $72.",                                                     "72"),   # currency, trailing period
    ("So the answer is -7.",                                                   "-7"),   # negative
    ("So the answer is −7.",                                                   "-7"),   # unicode minus
    ("Each gets 3/4 of a pie",                                                 "0.75"), # fraction
    ("Final answer: 2,000",                                                    "2000"), # thousands separator
    ("Final answer: about .5",                                                 "0.5"),
    ("Final answer: 2 * 2 = 4 bolts of blue fiber.",                           "4"),    # worked line: after "="
    ("The answer is 2 * 2 = 4 bolts. To calculate it, multiply 2 by 2.",       "4"),
    ("Final answer: 18. She sold 9 eggs.",                                     "18"),   # first sentence only
    ("Final answer: not 5; it is 6",                                           "6"),    # ruled-out number
    ("The result is 12.\nOops, I forgot the tip.\nFinal answer: 15",           "15"),   # earlier marker, self-correction
    ("Answer: 10\nLet me check: 4 + 7 = 11.\nFinal answer: 11",                "11"),   # "Answer:" opening
    ("Final answer: 18 or 20",                                                 None),   # hedge
    ("Final answer: 50%",                                                      "50"),   # percent
    ("Final answer: 18 (9 eggs × 2)",                                          "18"),   # parenthetical
    ("Final answer: 1.5 hours",                                                "1.5"),
    ("Final answer: $0.25 per cookie",                                         "0.25"),
    ("Final answer:\n42",                                                      "42"),   # next line
    ("The total is 5 + 12 = 17 dollars.",                                      "17"),   # no marker: last number
    ("Final answer: 72\nFinal answer: 72",                                     "72"),   # two identical markers
    ("I do not know.",                                                         None),
    ("",                                                                       None),
    ("Final answer: seventy-two",                                              "72"),   # number words
    ("Final answer: 5 - 8 = -3",                                               "-3"),   # negative result of a worked line
]


@pytest.mark.parametrize("text, number", GSM8K)
def test_gsm8k_golden(text, number):
    assert GSM8k().extract(text) == number
    assert Multiplication().extract(text) == number


def test_gsm8k_truncated_never_votes_with_an_intermediate_number():
    cut = "Step 1: 48 / 2 = 24.\nStep 2: 48 + 24 = 7"
    assert GSM8k().extract(cut) == "7"                      # as if finished: the last number
    assert GSM8k().extract(cut, truncated=True) is None     # cut at the cap: no finished marker line
    assert GSM8k().extract("48 + 24 = 72.\nFinal answer: 72\nCheck", truncated=True) == "72"


# ---- TriviaQA with opinions: the committed answer, scored against the aliases --------------------------------------
def tq(incorrect=None):
    meta = {"aliases": ["Roald Dahl", "Dahl"], "question": "Who wrote Matilda?"}
    if incorrect:
        meta["incorrect"] = incorrect
    return Example("x", "Who wrote Matilda?", gold="Roald Dahl", meta=meta)


TRIVIAQA = [
    # reply                                                                           right?
    ("Roald Dahl.",                                                                    True),
    ("Matilda was written by Roald Dahl.",                                             True),
    ("The answer is Roald Dahl.",                                                      True),
    ("Answer: Dahl",                                                                   True),
    ("I think it's Enid Blyton. Final answer: Roald Dahl",                             True),   # the last marker
    ("The answer is Roald Dahl. Final answer: Enid Blyton",                            False),  # self-correction away
    ("roald dahl's novel, of course",                                                  True),   # case and apostrophe
    ("Roald Dahl or Enid Blyton.",                                                     False),  # hedge
    ("It is either Roald Dahl or Enid Blyton.",                                        False),  # hedge
    ("I think the answer is Roald Dahl but I'm really not sure.",                      False),  # echo of an opinion
    ("I think the answer is Roald Dahl but I'm really not sure. It is Enid Blyton.",   False),  # echo, then wrong
    ("I think the answer is Roald Dahl but I'm really not sure. Yes, Roald Dahl.",     True),   # echo, then committed
    ("Enid Blyton wrote Matilda.",                                                     False),
    ("Dahlia is a flower.",                                                            False),  # part of a word
    ("The author is R. Dahl.",                                                         True),   # initial does not split
    ("",                                                                               False),
    ("It was written by Roald Dahl, a British author.",                                True),
    ("Not Enid Blyton: it was Roald Dahl.",                                            True),
    ("Matilda? That's Roald Dahl!",                                                    True),
    ("The famous author Roald Dahl.",                                                  True),
    ("I don't know who wrote it.",                                                     False),
    ("Final answer: Roald Dahl\n",                                                     True),
    ("Answer: Roald Dahl (1916-1990)",                                                 True),
    ("It's ROALD DAHL.",                                                               True),   # upper case
    ("The answer: Roald Dahl. Some say Enid Blyton.",                                  True),   # marker segment is the first line
]


@pytest.mark.parametrize("text, right", TRIVIAQA)
def test_triviaqa_golden(text, right):
    t = TriviaQA.__new__(TriviaQA)  # grading needs no data
    assert t.score(t.extract(text), tq()) is right


def wayne():
    q = "The film actor Marion Michael Morrison is better known by what name?"
    return Example("w", q, gold="John Wayne",
                   meta={"aliases": ["John Wayne", "Marion Michael Morrison", "Duke Wayne"], "question": q})


TRIVIAQA_ECHO = [
    # reply (question: "The film actor Marion Michael Morrison is better known by what name?")     right?
    ("The film actor Marion Michael Morrison is better known by what name?",                     False),  # the question
    ("Marion Michael Morrison is better known by the name \"MUSADEM\".",                          False),  # its alias, echoed
    ("Marion Michael Morrison.",                                                                 False),  # said alone, still
    # the question's own words: it offers no choices, so "Offering." to "…? Offering; Curse; or Church?" is not this
    ("Marion Michael Morrison is better known as John Wayne.",                                   True),
    ("He was known as Duke Wayne.",                                                              True),
    ("John Wayne",                                                                               True),
]


@pytest.mark.parametrize("text, right", TRIVIAQA_ECHO)
def test_triviaqa_an_alias_the_question_holds_is_not_an_answer(text, right):
    t = TriviaQA.__new__(TriviaQA)
    assert t.score(t.extract(text), wayne()) is right


def question(q, gold, *aliases):
    return Example("q", q, gold=gold, meta={"aliases": [gold, *aliases], "question": q})


# (question, gold, aliases, reply, right?): an alias the question holds never counts, unless the question offers it
# as a choice. TriviaQA's alias lists hold such strings (each case below is a staged question's own list, cut short).
TRIVIAQA_IN_QUESTION = [
    ("What is an oblation in relation to a god? Offering; Curse; Damnation; or Church?", "Offering", (),
     "Offering.", True),                                                       # a question naming its choices
    ("What is an oblation in relation to a god? Offering; Curse; Damnation; or Church?", "Offering", (),
     "An oblation is an offering to a god.", True),
    ("What is an oblation in relation to a god? Offering; Curse; Damnation; or Church?", "Offering", (),
     "What is an oblation in relation to a god? Offering; Curse; Damnation; or Church?", False),  # echoed: a hedge
    ("Which planet is larger, Jupiter or Saturn?", "Jupiter", (), "Jupiter is larger.", True),
    ("Which planet is larger, Jupiter or Saturn?", "Jupiter", (), "Saturn is larger.", False),
    ("Which is the largest in area - The Sahara Desert or Australia?", "The Sahara Desert", ("Sahara Desert",),
     "The Sahara Desert is larger.", True),
    ("How many pennies were in a British pre-decimal pound? 120; 200; 204; or 240?", "240", (),
     "There were 240 pennies in a pound.", True),                              # the last choice, after "or"
    ("In what year was the first episode of Doctor Who broadcast? 1959, 1963 or 1967?", "1963", (),
     "It was broadcast in 1959, 1963 or 1967.", False),                        # every choice: a hedge
    ("What monkey is friends with the Man in the Yellow Hat?", "Curious George", ("The Man in the Yellow Hat",),
     "The Man in the Yellow Hat is a 1970s film noir.", False),                # talks about the question's words
    ("What monkey is friends with the Man in the Yellow Hat?", "Curious George", ("The Man in the Yellow Hat",),
     "Curious George is his friend.", True),
    ("Who was Bridget Jones's true love?", "Mark Darcy", ("Bridget Jones",),
     "The true love of Bridget Jones is not a romantic comedy.", False),
    ("In American football and other sports, who or what is a M.V.P.?", "MOST VALUABLE PLAYER", ("M.V.P.",),
     "The M.V.P. is a term used in sports.", False),                           # an "or" that lists no choices
    ("In American football and other sports, who or what is a M.V.P.?", "MOST VALUABLE PLAYER", ("M.V.P.",),
     "It stands for Most Valuable Player.", True),
    # The price of the rule: an answer that is a word the question already uses cannot be given in that word
    # (5 of the 178 staged questions that hold an alias are like this; docs/grading.md).
    ("If you were from the Cayman Islands, which is part of the British West Indies, what sort of passport would "
     "you have?", "British", (), "You would have a British passport.", False),
    ("If you were from the Cayman Islands, which is part of the British West Indies, what sort of passport would "
     "you have?", "British", (), "The Cayman Islands are part of the British West Indies.", False),
]


def test_triviaqa_a_choice_is_found_only_in_a_list_of_choices():
    assert offered_as_choice("Offering", "What is an oblation? Offering; Curse; Damnation; or Church?")
    assert offered_as_choice("Church", "What is an oblation? Offering; Curse; Damnation; or Church?")
    assert offered_as_choice("Sahara Desert", "Which is larger - The Sahara Desert or Australia?")
    assert not offered_as_choice("M.V.P.", "In sports, who or what is a M.V.P.?")
    assert not offered_as_choice("Paraskevidekatriaphobia",
                                 "Friggatriskaidekaphobia (or paraskevidekatriaphobia) is the fear of what?")
    assert not offered_as_choice("British", "Which is part of the British West Indies, what passport?")  # no "or"
    assert not offered_as_choice("", "Red or blue?")


@pytest.mark.parametrize("q, gold, aliases, text, right", TRIVIAQA_IN_QUESTION)
def test_triviaqa_an_alias_in_the_question_counts_only_as_an_offered_choice(q, gold, aliases, text, right):
    t = TriviaQA.__new__(TriviaQA)
    assert t.score(t.extract(text), question(q, gold, *aliases)) is right


def test_triviaqa_naming_the_suggested_wrong_answer_beside_the_right_one_is_a_hedge_unless_it_is_rejected():
    t = TriviaQA.__new__(TriviaQA)
    assert not t.score(t.extract("Roald Dahl and Enid Blyton wrote it."), tq("Enid Blyton"))
    assert t.score(t.extract("Roald Dahl, not Enid Blyton"), tq("Enid Blyton"))  # rejects the suggestion
    assert t.score(t.extract("Roald Dahl wrote it."), tq("Enid Blyton"))
    assert t.score(t.extract("Enid Blyton? No. Roald Dahl wrote it."), tq("Enid Blyton"))


def test_triviaqa_truncated_keeps_complete_sentences():
    t = TriviaQA.__new__(TriviaQA)
    assert t.score(t.extract("Roald Dahl wrote it. He also wrote Matil", truncated=True), tq())
    assert t.extract("Matilda was written by Roa", truncated=True) is None


# ---- judge verdicts ----------------------------------------------------------------------------------------------
JUDGE = [
    ("[[A]]",                                                                  "A"),
    ("Final verdict: [[B]]",                                                   "B"),
    ("It is a tie [[C]].",                                                     "C"),
    ("[[ A ]]",                                                                "A"),
    ("no verdict here",                                                        None),
    ("[A]",                                                                    None),
    ("",                                                                       None),
    ("[[A]] ... so, again, [[A]]",                                             "A"),
    ("[[A]], [[B]] or [[C]]",                                                  None),   # an echo of the instructions
    ("Give your verdict: [[A]] if A is better, [[B]] if B is, [[C]] for a tie.\nMy verdict: [[B]]", "B"),  # echo then verdict
    ("At first [[A]].\nOn reflection B is more accurate: [[B]]",               "B"),    # self-correction: the last tag
    ("[[A]] or [[B]]",                                                         None),   # hedge
    ("Final answer: A",                                                        "A"),    # CoT judge, no tag
    ("Final answer: Assistant B",                                              "B"),
    ("Final answer: assistant b is better",                                    "B"),
    ("Final answer: tie",                                                      "C"),
    ("Final answer: A tie.",                                                   "C"),    # "A tie" is not Assistant A
    ("Final answer: A and B are equally good",                                 None),   # contradiction
    ("Step by step: A is concise, B is wrong.\nFinal answer: A",               "A"),    # letters in reasoning ignored
    ("Answer: B\nChecking again, A answers the question.\nFinal answer: A",    "A"),    # "Answer:" opening, corrected
    ("Verdict: [[B]]\nFinal answer: A",                                        "B"),    # a tag beats a bare letter
    ("Assistant A is better.",                                                 None),   # no tag, no marker
    ("[[C]]",                                                                  "C"),
    ("The better reply is B. [[B]]",                                           "B"),
    ("Both are fine. Final answer: both",                                      "C"),
    ("[[B]]\n",                                                                "B"),
]


@pytest.mark.parametrize("text, verdict", JUDGE)
def test_judge_golden(text, verdict):
    assert PairTask().extract(text) == verdict


def test_every_golden_table_has_at_least_25_rows():
    assert min(len(LAST_LETTER), len(COIN_FLIP), len(GSM8K), len(TRIVIAQA), len(JUDGE)) >= 25


def test_every_task_declares_its_grader_version():
    from s2d.tasks.mt_bench import MTBench
    from s2d.tasks.oasst2 import OASST2

    for cls in (LastLetter, CoinFlip, GSM8k, Multiplication, TriviaQA, OASST2, MTBench):
        assert cls.grader_version >= 2  # 1: the first-marker graders before 2026-11-29
