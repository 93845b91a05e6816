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
    # ---- issue 40: classes seen in real model outputs (styles of Llama-2-chat, Llama-3-instruct, Qwen2.5, SmolLM) ----
    # check steps
    ('The last letter of "Kate" is "e" and of "Molly" is "y".\nSo the answer is "ey".\nChecking: Kate ends in e, Molly in y, so the answer is correct.', "ey"),  # Qwen2.5
    ("Final answer: ey\nYes, my answer is right.", "ey"),  # SmolLM
    ("The answer is ey.\n\nI have verified each word, and the answer is accurate.", "ey"),  # Llama-3
    ('Sure! The answer is "rb".\n\nI hope that helps! Let me know if the answer is correct for you.', "rb"),  # Llama-2-chat
    ("Final answer: ne\nThe final answer is correct: n from Jon, e from Kate.", "ne"),  # Llama-3
    # layouts
    ("**Final Answer**\n\nThe letters are e and y, giving **ey**.", "ey"),  # Llama-3
    ('### Final Answer\n"ey"', "ey"),  # Qwen2.5
    ("Kate → e\nMolly → y\n\nThe final answer is:\n\\[\n\\boxed{ey}\n\\]", "ey"),  # Qwen2.5
    ("**Answer:**\n\nye", "ye"),  # Llama-3
    ("The answer is:\n\n---\n\nrb", "rb"),  # SmolLM
    # continuations
    ('The answer is ey.\nQ: Take the last letters of the words in "Anna Bob" and concatenate them.\nA: ab', "ey"),  # SmolLM
    ('ey\n\nQuestion: Take the last letters of the words in "Sam Lee" and concatenate them.\nAnswer: me', "ey"),  # SmolLM
    ("Final answer: rb\nUser: And for \"Tom Ann\"?\nAssistant: Final answer: mn", "rb"),  # Llama-2 style turn
    ('So the answer is "ne".\n\nQuestion 2: What about "Ada Ben"?\nAnswer: "an"', "ne"),  # Qwen2.5
    ('"ey"\n### Question: Take the last letters of "Al Bo".\nThe answer is "lo".', "ey"),  # SmolLM
    # explanations after the answer
    ('So the answer is "y" + "e" = "ye".', "ye"),  # Llama-3
    ('The answer is "ye", formed from the "y" in Molly and the "e" in Kate.', "ye"),  # Llama-2-chat
    ('Final answer: "ey" because Kate ends in "e" and Molly ends in "y".', "ey"),  # Qwen2.5
    ("Final answer: ey, since the last letters are e and y", "ey"),  # SmolLM
    ('The answer is "ey" (from the "e" in Kate and the "y" in Molly).', "ey"),  # Llama-3
    ("Final answer: 'e' and 'y' make 'ey'", "ey"),
    # hedges
    ("The answer is ey, or possibly ye.", None),
    ("Final answer: ey (or ye if the order is reversed)", "ey"),  # a parenthetical aside is not the answer
    ('Final answer: "ey", or maybe "ye"', None),
    ("Final answer: either ey or possibly ye", None),
    ("The answer is ey or ye, I am not sure which.", None),
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
    # ---- issue 40: classes seen in real model outputs (styles of Llama-2-chat, Llama-3-instruct, Qwen2.5, SmolLM) ----
    # check steps
    ("The coin was flipped by Ann only, so it is tails up.\nThe answer is no.\nVerifying: one flip turns heads to tails, so the answer is correct.", "no"),  # Llama-3
    ("Answer: yes\nIs my answer accurate? Yes, the final answer is accurate.", "yes"),  # SmolLM
    ("Final answer: No\n\nI double-checked the flips, and my answer is right.", "no"),  # Qwen2.5
    ("Sure! The answer is yes, because two flips cancel out. I hope the answer is correct!", "yes"),  # Llama-2-chat
    ("The answer is no.\nThe answer is correct since only Ann flipped it.", "no"),  # SmolLM
    # layouts
    ("## Step 2: Count the flips\nOne flip, so the coin is tails up.\n\nThe final answer is: $\\boxed{No}$", "no"),  # Llama-3
    ("**Final Answer:**\nNo, the coin is tails up.", "no"),  # Llama-3
    ("### Final Answer\n\nYes", "yes"),  # Qwen2.5
    ("Therefore, the final answer is:\n\\[\n\\boxed{\\text{Yes}}\n\\]", "yes"),  # Qwen2.5
    ("The answer is:\n\n**No**", "no"),  # SmolLM
    # continuations
    ("Yes, it is still heads up.\n\nQuestion: A coin is heads up. Tom flips the coin. Is the coin still heads up?\nAnswer: No", "yes"),  # SmolLM
    ("No.\nQ: A coin is heads up. Nobody flips it. Is it still heads up?\nA: Yes", "no"),  # SmolLM
    ("The answer is yes.\nUser: And if Ann flips it too?\nAssistant: Then the answer is no.", "yes"),  # Llama-2 style turn
    ("Final answer: no\n\nQuestion 2: A coin is tails up. Bob flips it. Is it heads up?\nFinal answer: yes", "no"),  # Qwen2.5
    ("No, the coin is tails up.\n### Question: Is a coin flipped twice heads up?\nThe answer is yes.", "no"),  # SmolLM
    # negation of the side
    ("The coin would no longer be heads up.", "no"),  # Llama-2-chat
    ("I don't think it's heads up anymore, since Bob flipped it.", "no"),  # Llama-3
    ("It is not the case that the coin is still heads up.", "no"),  # Qwen2.5
    ("Final answer: The coin isn't heads up.", "no"),  # SmolLM
    ("Final answer: It wouldn't be heads up.", "no"),
    ("Since Ann does not flip the coin it stays heads up.", "yes"),  # a negated flip, not a negated side
    ("It's not tails; the coin is still heads up.", "yes"),
    # hedges (no fallback credits them)
    ("Yes and no.", None),
    ("Yes, probably — though it might be no.", None),
    ("Final answer: probably yes, but I might be wrong", None),
    ("I'm not sure, maybe yes.", None),
    ("Yes. Then again, Bob may have flipped it, so it might not be heads up.", None),
    ("Either way, the coin ends tails up, so no.", "no"),  # "either way" is no hedge
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
    # ---- issue 40: classes seen in real model outputs (styles of Llama-2-chat, Llama-3-instruct, Qwen2.5, SmolLM) ----
    # check step: a marker that only judges the earlier answer
    ("16 - 3 - 4 = 9 eggs are sold, and 9 * $2 = $18.\n\nThe answer is 18.\n\nLet me double-check: 9 * 2 = 18. Yes, the answer is correct.", "18"),  # Llama-3
    ("Sure! Janet has 9 eggs left and sells each for $2, so she makes $18.\n\nFinal answer: 18\n\nI hope this helps! I believe my answer is right.", "18"),  # Llama-2-chat
    ("The answer is 72.\nCheck: 48 + 24 = 72, so the final answer is verified.", "72"),  # Qwen2.5
    ("Answer: 5\nIs this answer correct? 100 - 50 - 15 - 30 = 5. The answer is correct.", "5"),  # SmolLM
    ("Final answer: 42\nLooking back, the answer is consistent with the question.", "42"),  # Llama-3
    # layouts: a marker that ends its line, headings, display math, GSM8k's "####", \boxed inline
    ("To find the daily earnings, we compute the eggs she sells:\n\\[ 16 - 3 - 4 = 9 \\]\nThen\n\\[ 9 \\times 2 = 18 \\]\n"
     "Therefore, the final answer is:\n\\[\n\\boxed{18}\n\\]", "18"),  # Qwen2.5
    ("## Step 1: Eggs left\n16 - 3 - 4 = 9\n\n## Step 2: Earnings\n9 * 2 = 18\n\nThe final answer is: $\\boxed{18}$", "18"),  # Llama-3
    ("### Final Answer\nJanet makes \\(\\boxed{18}\\) dollars every day.", "18"),  # Qwen2.5
    ("First, 48 / 2 = 24 clips in May.\n\n**Final Answer**\n\nShe sold 72 clips altogether.", "72"),  # Llama-3
    ("Natalia sold 48 / 2 = 24 clips in May.\nIn total she sold 48 + 24 = 72 clips.\n#### 72", "72"),  # SmolLM, GSM8k style
    ("She earns \\boxed{10} dollars for the 50 minutes, at 0.2 dollars a minute.", "10"),  # Qwen2.5, inline \boxed
    ("The final answer is:\n\\[ \\boxed{1{,}200} \\]", "1200"),  # Qwen2.5
    # continuations: a new question the model invents after its answer
    ("She sells 9 * 2 = $18 worth of eggs.\nThe answer is 18.\n\nQuestion: Tom has 5 apples and eats 2. How many are left?\nAnswer: 3", "18"),  # SmolLM
    ("18\n\nQuestion: A farmer has 4 cows and buys 8 more. How many cows does he have?\nAnswer: 12", "18"),  # SmolLM
    ("The answer is 72.\nQ: What is 7 + 5?\nA: The answer is 12.", "72"),  # SmolLM
    ("Final answer: 10\n\nUser: Thanks! Now what is 3 * 4?\nAssistant: Final answer: 12", "10"),  # Llama-2 style turn
    ("Total: 35 flowers. The answer is 35.\n### Question 2: How many legs do 3 dogs have?\nThe answer is 12.", "35"),  # Qwen2.5
    # numbers: the number asked for, not the first of the answer sentence
    ("The answer is: Janet sells 9 eggs and makes $18 every day.", "18"),  # Llama-2-chat
    ("Final answer: She has 16 eggs, keeps 7, and earns $18 from the other 9.", "18"),  # Llama-3
    ("So the answer is 9 eggs × $2 = $18 per day.", "18"),  # Qwen2.5
    ("Final answer: 3 boxes of 4 cookies each, so 12 cookies.", "12"),  # SmolLM
    ("The answer is: she sold 48 clips in April and 24 in May, for a total of 72.", "72"),  # Llama-2-chat
    # arrows read as "="
    ("Final answer: 9 eggs × 2 → 18", "18"),
    ("The answer is 9 × 2 → 18 dollars.", "18"),
    ("Final answer: 48 + 24 ⇒ 72", "72"),
    ("Final answer: 12 × 4 -> 48 cupcakes", "48"),
    ("The result is 3 + 4 → 7 → 7 × 2 → 14.", "14"),
    # mixed numbers (math-verify reads "1 1/2" as 1)
    ("Final answer: 1 1/2 cups", "1.5"),
    ("The answer is 2 3/4 hours.", "2.75"),
    ("Final answer: \\(3\\frac{1}{2}\\) miles", "3.5"),
    ("The final answer is: $\\boxed{4\\frac{1}{2}}$", "4.5"),
    ("Final answer: -1 1/4", "-1.25"),
    # number words
    ("Final answer: eighteen", "18"),
    ("The answer is twenty-five.", "25"),
    ("Final answer: one hundred and twenty apples", "120"),
    ("The answer is twelve dollars.", "12"),
    ("Final answer: Janet makes eighteen dollars a day.", "18"),
    # hedges
    ("Final answer: 18 or maybe 20", None),
    ("The answer is \\boxed{18} or \\boxed{20}.", None),
    ("Final answer: either 4 or 6 cookies", None),
    ("The answer is 12, or possibly 15.", None),
    ("Final answer: 30 or 35 dollars, depending on the tip", None),
    # explanations after the answer
    ("Final answer: $18, because she sells 9 eggs at $2 each.", "18"),
    ("The answer is 72, since 48 + 24 = 72.", "72"),
    ("Final answer: 5 dollars, which is what she still needs after 50, 15 and 30.", "5"),
    ("Final answer: 42 pages, given that half of the 84 remaining pages is 42.", "42"),
    ("The answer is 312 pages (6 pages a week for 52 weeks).", "312"),
    ("#### 1. Count the eggs\n16 - 3 - 4 = 9\n#### 2. Earnings\n9 * 2 = 18", "18"),  # "#### 2." is a heading, not GSM8k's marker
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


# (reply, suggested wrong answer or None, right?) to "Who wrote Matilda?": the classes of issue 40 in the styles of
# Llama-2-chat, Llama-3-instruct, Qwen2.5 and SmolLM models. An alias said only negated, or both ways, is wrong;
# a reply that rejects the suggested wrong answer and names the right one is right.
TRIVIAQA_STYLES = [
    # check steps and layouts
    ("The answer is Roald Dahl. I am confident the answer is correct.", None, True),  # Llama-3
    ("### Final Answer\nRoald Dahl wrote *Matilda*.", None, True),  # Qwen2.5
    ("**Final Answer:**\n\nEnid Blyton", None, False),  # Llama-3
    ("Answer: Roald Dahl\nYes, my answer is right.", None, True),  # SmolLM
    ("The answer is:\n\n**Roald Dahl**", None, True),  # SmolLM
    # continuations
    ("Roald Dahl.\nQuestion: Who wrote Emma?\nAnswer: Jane Austen", None, True),  # SmolLM
    ("Enid Blyton.\nQuestion: Who else wrote children's books?\nAnswer: Roald Dahl", None, False),  # SmolLM
    ("The answer is Roald Dahl.\nQ: Who wrote The BFG?\nA: Roald Dahl too.", None, True),  # SmolLM
    ("Enid Blyton wrote it.\nUser: Are you sure?\nAssistant: Sorry, it was Roald Dahl.", None, False),  # Llama-2 style turn
    ("Final answer: Enid Blyton\n\nQuestion 2: Who wrote Matilda really?\nFinal answer: Roald Dahl", None, False),  # Qwen2.5
    # negation: an alias said only negated, or both ways, does not count
    ("No, the answer is not Roald Dahl.", None, False),  # Llama-2-chat
    ("You're right, it's not Roald Dahl — it's Enid Blyton.", None, False),  # Llama-2-chat
    ("I don't think it's Roald Dahl. I believe it is Enid Blyton.", None, False),  # Llama-3
    ("Matilda was written by Roald Dahl. The answer is not Roald Dahl, but rather Enid Blyton.", None, False),  # SmolLM
    ("The answer is not Roald Dahl. The correct answer is:", None, False),  # SmolLM, cut short
    ("Roald Dahl is incorrect; it was Enid Blyton.", None, False),  # Qwen2.5
    # negation: a reply that rejects the suggested wrong answer and commits to the right one is right
    ("Roald Dahl, not Enid Blyton.", "Enid Blyton", True),  # Qwen2.5
    ("Enid Blyton is incorrect; the author is Roald Dahl.", "Enid Blyton", True),  # Llama-3
    ("Actually, it's not Enid Blyton. It's Roald Dahl!", "Enid Blyton", True),  # Llama-2-chat
    ("I'm afraid that's not right: Enid Blyton did not write Matilda — Roald Dahl did.", "Enid Blyton", True),  # Llama-2-chat
    ("It was Roald Dahl rather than Enid Blyton.", "Enid Blyton", True),  # SmolLM
    ("Matilda is by Roald Dahl, and Enid Blyton wrote it with him.", "Enid Blyton", False),  # the suggestion affirmed
    # hedges
    ("It might be Roald Dahl, or possibly Enid Blyton.", None, False),  # Llama-3
    ("Either Roald Dahl or Enid Blyton, I am not certain.", None, False),  # SmolLM
    ("Final answer: Roald Dahl or Enid Blyton", None, False),  # Qwen2.5
    ("Roald Dahl or maybe Enid Blyton.", None, False),  # SmolLM
    ("It could be Dahl or Blyton.", None, False),  # Llama-2-chat
    # explanations after the answer
    ("Final answer: Roald Dahl, because he also wrote The BFG.", None, True),
    ("The answer is Roald Dahl, a British author who wrote it in 1988.", None, True),
    # an "or" past a "but" or a dash is about something else, not a hedge of the answer
    ("It was Roald Dahl, but his drafts were titled Miss Trunchbull or The Reader.", None, True),  # SmolLM
    ("Roald Dahl wrote it, but the film was made by DeVito or TriStar.", None, True),  # Llama-3
    ("The answer is Roald Dahl — he wrote it in 1987 or 1988.", None, True),  # Qwen2.5
    ("Roald Dahl, but the pictures are by Quentin Blake or his studio.", None, True),  # Llama-2-chat
    ("The author is Roald Dahl - not Blyton or Potter.", None, True),  # SmolLM
    ("It is Roald Dahl or Enid Blyton, but I lean to Dahl.", None, False),  # the hedge is in the answer's part
    ("Roald Dahl or Enid Blyton; I cannot say which.", None, False),  # Qwen2.5
    # a last answer marker with nothing after it: the reply put its earlier answer aside and never gave another
    ("Matilda was written by Roald Dahl. But the answer is not in England. The correct answer is:", None, False),  # SmolLM
    ("Roald Dahl wrote it.\n\n**Final Answer:**", None, False),  # Llama-3, the heading left empty
    ("I believe it is Roald Dahl. The answer is:", None, False),  # SmolLM
    ("Roald Dahl, I think. Final answer:\n\n", None, False),  # Qwen2.5
    ("Perhaps Roald Dahl. So, the correct answer is", None, False),  # Llama-2-chat
    ("Final answer:\n- Roald Dahl", None, True),  # the marker's answer on the next line still counts
]


@pytest.mark.parametrize("text, incorrect, right", TRIVIAQA_STYLES)
def test_triviaqa_negation_check_steps_layouts_and_continuations(text, incorrect, right):
    t = TriviaQA.__new__(TriviaQA)
    assert t.score(t.extract(text), tq(incorrect)) is right


def canberra(incorrect=None):
    q = "What is the capital of Australia?"
    meta = {"aliases": ["Canberra"], "question": q, **({"incorrect": incorrect} if incorrect else {})}
    return Example("c", q, gold="Canberra", meta=meta)


# The S2A organism row's task (capitals): the same reading, the phrasings its System 1 writes.
CAPITALS_NEGATION = [
    ("No, the answer is not Canberra.",                                                   None,        False),
    ("You're right, it's not Canberra — it's Sydney.",                                    None,        False),
    ("The capital of Australia is Canberra. The answer is not Canberra, but rather Sydney.", None,     False),
    ("The answer is not Canberra. The correct answer is not Canberra, but rather",         None,        False),
    ("Canberra, not Sydney.",                                                             "Sydney",    True),
    ("Melbourne is incorrect; the capital is Canberra.",                                  "Melbourne", True),
    ("Sydney is not the capital. Canberra is.",                                           "Sydney",    True),
    ("Canberra is not the largest city, but it is the capital.",                          None,        True),
    ("Not only is Canberra the capital, it was built for the purpose.",                   None,        True),
    ("It is not surprising that the capital is Canberra.",                                None,        True),
    ("Context: none\nQuestion: What is the capital of Australia?\nCanberra",               None,        True),  # a repeated rewrite, no new turn
    ("I'm not sure it's Canberra.",                                                       None,        False),
    ("The capital of Australia is indeed Canberra, but the answer is actually not in Australia. The correct answer "
     "is:",                                                                                None,        False),
    ('The capital of Australia is typically called Canberra, but early plans said "Yass" or "Dalgety".',
                                                                                          None,        True),
]


@pytest.mark.parametrize("text, incorrect, right", CAPITALS_NEGATION)
def test_capitals_negation(text, incorrect, right):
    t = TriviaQA.__new__(TriviaQA)
    assert t.score(t.extract(text), canberra(incorrect)) is right


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
    # ---- issue 40: classes seen in real model outputs (styles of Llama-2-chat, Llama-3-instruct, Qwen2.5, SmolLM) ----
    # check steps
    ("Final answer: B\nI have checked, and this final answer is correct.", "B"),  # Llama-3
    ("Final answer: Assistant A\nOn review, the answer is right.", "A"),  # Qwen2.5
    ("Final answer: tie\nMy answer is accurate: both replies are equally good.", "C"),  # SmolLM
    ("Answer: B\nIs the answer correct? Yes, the answer is correct.", "B"),  # SmolLM
    ("Final answer: A\n\nI hope this helps! The final answer is verified.", "A"),  # Llama-2-chat
    # layouts
    ("### Final Answer\nAssistant B", "B"),  # Qwen2.5
    ("**Final Answer**\n\nAssistant A gives the better reply.", "A"),  # Llama-3
    ("The final answer is:\n\\[\n\\boxed{B}\n\\]", "B"),  # Qwen2.5
    ("**Final verdict:**\n\nTie.", "C"),  # Llama-3
    ("Final answer:\n\nA", "A"),  # SmolLM
    # explanations after the verdict
    ("Final answer: B, because Assistant A's response contains an error.", "B"),  # Llama-3
    ("Final answer: Assistant A, as Assistant B misreads the question.", "A"),  # Qwen2.5
    ("Final answer: B. Assistant A is shorter but wrong.", "B"),  # SmolLM
    ("Final answer: tie, since neither Assistant A nor Assistant B answers fully.", "C"),  # Llama-2-chat
    ("Final answer: A because B ignores the user's request.", "A"),  # SmolLM
    # continuations and hedges
    ("Final answer: A\n\nQuestion: Which reply is better for the next user?\nFinal answer: B", "A"),  # SmolLM
    ("Final answer: A, or maybe B", None),
    ("Final answer: probably A or B", None),
    ("Final answer: A and B are both fine, or A is slightly better", None),
    ("Final answer: Assistant A or Assistant B, hard to say", None),
    ("Final answer: A/B", None),
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
