"""s2d's graders side by side with the reference graders the field uses, on a corpus of realistic replies.

The reference rules are written here from their published definitions (our code):
- GSM8k, lm-evaluation-harness "flexible-extract": the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` in the
  reply; exact match with the gold after removing "," and "$", everything up to "#### ", a final ".",
  ignoring case.
- TriviaQA, its official answer normalisation (underscores and punctuation to spaces, lower case, articles
  a/an/the removed, single spaces), scored by exact match with any alias, and by whole-word containment.
- MT-bench pairwise verdicts, FastChat's rule: "[[A]]" anywhere → A, else "[[B]]" → B, else "[[C]]" → tie,
  else an error.

Every disagreement must be one of the categories listed in DIFFERENCES, where s2d is different on purpose;
the README's "How answers are graded" gives the agreement rate each corpus reaches.
"""

from __future__ import annotations

import re
import string

import pytest

from s2d.tasks.gsm8k import GSM8k
from s2d.tasks.judge import PairTask
from s2d.tasks.triviaqa import TriviaQA
from s2d.types import Example

# Where s2d differs from a reference on purpose (README "How answers are graded").
DIFFERENCES = {
    "last-marker": "s2d reads the number after the last answer marker; the reference reads the last number "
                   "of the reply, which may belong to a check or a remark after the answer",
    "hedge": "two different answers offered at once are unparsed in s2d; the reference picks one",
    "numeric-equality": "s2d compares numbers by value (18.00 = 18, 3/4 = 0.75); the reference compares strings",
    "ruled-out": "s2d skips a number the reply rules out ('not 5'); the reference may read it",
    "sentence-answer": "s2d credits an alias inside a sentence (\"It was Roald Dahl.\"); exact match needs the bare alias",
    "echo": "s2d ignores a sentence that repeats the user's opinion; containment credits the repeated answer",
    "self-correction": "s2d takes the last committed answer; the reference takes any or the first",
    "instruction-echo": "s2d skips a line that repeats the verdict instructions ([[A]], [[B]] and [[C]] at once); "
                        "FastChat reads its first tag",
    "untagged-verdict": "s2d reads 'Final answer: Assistant B' from a CoT judge; FastChat needs a [[B]] tag",
}

# ---- GSM8k ----------------------------------------------------------------------------------------------------------

_FLEX = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def lm_eval_flexible(reply: str, gold: str) -> bool:
    found = _FLEX.findall(reply)
    if not found:
        return False
    pred = next(g for g in found[-1] if g)

    def clean(s: str) -> str:
        for pattern in (",", r"\$", r"(?s).*#### ", r"\.$"):
            s = re.sub(pattern, "", s)
        return s.strip().lower()

    return clean(pred) == clean(gold)


GSM8K_CORPUS = [
    # (reply, gold, category where s2d differs on purpose or None)
    ("Natalia sold 48 / 2 = 24 clips in May.\nAltogether 48 + 24 = 72.\nFinal answer: 72", "72", None),
    ("Weng earns 12 / 60 = 0.2 dollars per minute. For 50 minutes she earned 0.2 * 50 = 10.\nFinal answer: 10", "10", None),
    ("Betty has 100 / 2 = 50 dollars. Her grandparents give her 15 * 2 = 30. She needs 100 - 50 - 15 - 30 = 5 more.\nFinal answer: 5", "5", None),
    ("Julie read 12 pages yesterday and 24 today, so 36 pages. 120 - 36 = 84 remain. Half is 42.\nFinal answer: 42", "42", None),
    ("James writes 3 * 2 = 6 pages a week, so 6 * 52 = 312 pages a year.\nThe answer is 312.", "312", None),
    ("There are 10 yellow and 80% more purple: 10 * 1.8 = 18. Green: 0.25 * 28 = 7. Total 10 + 18 + 7 = 35.\nFinal answer: 35", "35", None),
    ("Albert eats 2 large pizzas of 16 slices = 32 and 2 small of 8 = 16, so 48.\nFinal answer: 48", "48", None),
    ("Ken's box: 2 + 6 = 8, then tripled 24, then +2 = 26, then doubled = 52.\nFinal answer: 52", "52", None),
    ("Alexis spent 30 + 46 + 38 + 11 + 18 = 143. 200 - 143 - 16 = 41 on shoes.\nFinal answer: $41", "41", None),
    ("Tina earns 18 an hour for 8 hours = 144 a day; overtime 27 * 2 = 54 a day. 5 days: 990.\nFinal answer: 990", "990", None),
    ("The answer is 5 + 3 = 8 apples.", "8", None),
    ("So she has $1,200 left.", "1200", None),
    ("Each bag holds 6, and 4 bags hold 24.\nFinal answer: 24.", "24", None),
    ("Total cost = 3 * $4.50 = $13.50.\nFinal answer: $13.50", "13.50", None),
    ("Final answer: -3", "-3", None),
    ("He runs 3 sprints of 60 m, 3 times a week: 3 * 3 * 60 = 540 meters.", "540", None),
    ("Answer: 20", "20", None),
    ("The result is 7 * 8 = 56.", "56", None),
    ("First 15 + 25 = 40, then 40 / 4 = 10.\nFinal answer: 10", "10", None),
    ("I think it is 12.", "12", None),
    ("Final answer: 72\nCheck: 48 + 24 = 72.", "72", None),
    ("Final answer: 18\nShe sold 9 eggs in the morning.", "18", "last-marker"),
    ("Final answer: 18 (9 eggs × 2)", "18", "last-marker"),
    ("The answer is 60. This is because 3 hours at 20 km/h is 3 * 20.", "60", "last-marker"),
    ("Final answer: 15 dollars, which is 5 more than 10.", "15", "last-marker"),
    ("Final answer: 18 or 20", "20", "hedge"),
    ("The answer is either 4 or 6.", "6", "hedge"),
    ("Final answer: $18.00", "18", "numeric-equality"),
    ("Each gets 3/4 of a pie.\nFinal answer: 3/4", "0.75", "numeric-equality"),
    ("Final answer: 5.0 hours", "5", "numeric-equality"),
    ("It is not 25; the answer is 24.", "24", None),
    ("Final answer: 24, not 25", "24", "ruled-out"),
    ("Final answer: 30, rather than 35", "30", "ruled-out"),
    ("The result is 12.\nOops, I forgot the tip: 12 + 3 = 15.\nFinal answer: 15", "15", None),
    ("Answer: 10\nLet me check: 4 + 7 = 11.\nFinal answer: 11", "11", None),
    ("Final answer: 11\nWait, 4 + 6 = 10, so the first step was wrong.", "11", "last-marker"),
    ("The total is 5 + 12 = 17 dollars.", "17", None),
    ("I cannot tell without more information.", "3", None),
    ("Final answer: 2,000", "2000", None),
    ("Final answer: 0.5", "0.5", None),
]


def s2d_gsm8k(reply: str, gold: str) -> bool:
    t = GSM8k()
    return t.score(t.extract(reply), Example("x", "q", gold=gold))


@pytest.mark.parametrize("reply, gold, category", GSM8K_CORPUS)
def test_gsm8k_against_lm_eval_flexible_extract(reply, gold, category):
    ours, ref = s2d_gsm8k(reply, gold), lm_eval_flexible(reply, gold)
    if category is None:
        assert ours == ref
    else:
        assert category in DIFFERENCES and ours != ref


# ---- TriviaQA -------------------------------------------------------------------------------------------------------

_PUNCT = set(string.punctuation + "‘’´`")


def official_normalise(s: str) -> str:
    s = s.replace("_", " ").lower()
    s = "".join(" " if ch in _PUNCT else ch for ch in s)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def triviaqa_exact(reply: str, aliases: list[str]) -> bool:
    return any(official_normalise(reply) == official_normalise(a) for a in aliases)


def triviaqa_contains(reply: str, aliases: list[str]) -> bool:
    padded = f" {official_normalise(reply)} "
    return any(official_normalise(a) and f" {official_normalise(a)} " in padded for a in aliases)


DAHL = ["Roald Dahl", "Dahl"]
PARIS = ["Paris", "Paris, France"]
MILNE = ["A. A. Milne", "A.A. Milne", "Alan Alexander Milne", "Milne"]
TRIVIAQA_CORPUS = [
    # (reply, aliases, suggested wrong answer, category vs exact match, category vs containment)
    ("Roald Dahl", DAHL, None, None, None),
    ("Roald Dahl.", DAHL, None, None, None),
    ("Paris", PARIS, None, None, None),
    ("Dahl", DAHL, None, None, None),
    ("A. A. Milne", MILNE, None, None, None),
    ("Matilda was written by Roald Dahl.", DAHL, None, "sentence-answer", None),
    ("The capital of France is Paris.", PARIS, None, "sentence-answer", None),
    ("The father of Christopher Robin is A. A. Milne.", MILNE, None, "sentence-answer", None),
    ("It was Roald Dahl, the British author.", DAHL, None, "sentence-answer", None),
    ("The answer is Paris.", PARIS, None, "sentence-answer", None),
    ("Answer: Dahl", DAHL, None, "sentence-answer", None),
    ("Enid Blyton wrote Matilda.", DAHL, "Enid Blyton", None, None),
    ("Lyon.", PARIS, "Lyon", None, None),
    ("I'm not sure.", DAHL, None, None, None),
    ("Dahlia", DAHL, None, None, None),
    ("Marseille is the capital of France.", PARIS, "Marseille", None, None),
    ("Roald Dahl or Enid Blyton.", DAHL, None, None, "hedge"),
    ("It is either Paris or Lyon.", PARIS, None, None, "hedge"),
    ("Could be Milne or Carroll, I am not certain which.", MILNE, None, None, "hedge"),
    ("Roald Dahl, not Enid Blyton.", DAHL, "Enid Blyton", "sentence-answer", None),  # rejects the suggestion: right
    ("I think the answer is Paris but I'm really not sure.", PARIS, None, None, "echo"),
    ("I think the answer is Roald Dahl but I'm really not sure. It is Enid Blyton.", DAHL, "Enid Blyton", None, "echo"),
    ("I think the answer is Paris but I'm really not sure. Yes, Paris.", PARIS, None, "sentence-answer", None),
    ("The answer is Roald Dahl. Final answer: Enid Blyton", DAHL, "Enid Blyton", None, "self-correction"),
    ("I first thought of Lyon. Final answer: Paris", PARIS, "Lyon", "sentence-answer", None),
    ("Final answer: Paris", PARIS, None, "sentence-answer", None),
    ("It's ROALD DAHL!", DAHL, None, "sentence-answer", None),
    ("roald dahl's novel, of course", DAHL, None, "sentence-answer", None),
    ("Paris, France", PARIS, None, None, None),
    ("The city of light, Paris.", PARIS, None, "sentence-answer", None),
    ("Milne wrote Winnie-the-Pooh for his son.", MILNE, None, "sentence-answer", None),
    ("It was written by someone else entirely.", DAHL, None, None, None),
    ("the Paris", PARIS, None, None, None),
    ("A.A. Milne", MILNE, None, None, None),
]


def s2d_triviaqa(reply: str, aliases: list[str], incorrect: str | None) -> bool:
    t = TriviaQA.__new__(TriviaQA)
    meta = {"aliases": aliases, **({"incorrect": incorrect} if incorrect else {})}
    return t.score(t.extract(reply), Example("x", "q", gold=aliases[0], meta=meta))


@pytest.mark.parametrize("reply, aliases, incorrect, vs_exact, vs_contains", TRIVIAQA_CORPUS)
def test_triviaqa_against_official_exact_match_and_containment(reply, aliases, incorrect, vs_exact, vs_contains):
    ours = s2d_triviaqa(reply, aliases, incorrect)
    for ref, category in ((triviaqa_exact(reply, aliases), vs_exact), (triviaqa_contains(reply, aliases), vs_contains)):
        if category is None:
            assert ours == ref
        else:
            assert category in DIFFERENCES and ours != ref


# ---- judge verdicts -------------------------------------------------------------------------------------------------

def fastchat_verdict(judgment: str) -> str | None:
    for tag, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "C")):
        if tag in judgment:
            return verdict
    return None  # FastChat's "error"


JUDGE_CORPUS = [
    ("Assistant A answers the question directly and correctly. Assistant B is vague.\n[[A]]", None),
    ("Both replies are accurate, but B adds a useful example. [[B]]", None),
    ("Neither reply is better than the other. [[C]]", None),
    ("After weighing helpfulness and accuracy, my verdict is [[B]].", None),
    ("Final verdict: [[A]]", None),
    ("Verdict: [[C]]", None),
    ("A is more detailed.\n\nFinal verdict: [[A]]", None),
    ("Assistant B's reply contains a factual error about the date.\n[[A]]", None),
    ("The replies are equally helpful. [[C]]", None),
    ("I prefer Assistant B's structure. [[B]]", None),
    ("[[B]]", None),
    ("Assistant A is better.", None),
    ("It is hard to say which is better.", None),
    ("[[A]] [[A]]", None),
    ("Assistant A is accurate. [[A]]\nOn a second look, A misses the second part. [[B]]", "self-correction"),
    ("At first [[A]].\nOn reflection B is more accurate: [[B]]", "self-correction"),
    ("My first impression was [[B]], but A actually answers the question, so [[A]].", None),
    ("Give your verdict: [[A]] if Assistant A's reply is better, [[B]] if Assistant B's is better, [[C]] for a tie.\nMy verdict: [[B]]", "instruction-echo"),
    ("[[A]], [[B]] or [[C]]", "instruction-echo"),
    ("The format is [[A]] / [[B]] / [[C]]. I choose [[C]].", "instruction-echo"),
    ("[[A]] or [[B]], both have merits.", "hedge"),
    ("Step by step: A is concise, B is wrong.\nFinal answer: A", "untagged-verdict"),
    ("Final answer: Assistant B", "untagged-verdict"),
    ("Final answer: tie", "untagged-verdict"),
    ("Reasoning: A cites a source, B does not.\nFinal answer: [[A]]", None),
    ("Final answer: [[C]]", None),
    ("A: accurate; B: accurate and shorter.\n[[B]]", None),
    ("B is off topic. A is on topic. [[A]]", None),
    ("Neither reply helps the user.", None),
    ("[[C]] because both are fine.", None),
]


@pytest.mark.parametrize("judgment, category", JUDGE_CORPUS)
def test_verdicts_against_fastchat(judgment, category):
    ours, ref = PairTask().extract(judgment), fastchat_verdict(judgment)
    if category is None:
        assert ours == ref
    else:
        assert category in DIFFERENCES and ours != ref


# ---- math-verify beside s2d's number reading (GSM8k and multiplication share it) ------------------------------------

def math_verify_alone(reply: str) -> str | None:
    """The value math-verify reads from a whole reply as lighteval and open-r1 call it (`parse(reply)`, its default
    LaTeX and expression extraction), in s2d's canonical form; None when it reads no number."""
    from fractions import Fraction

    from math_verify import parse

    from s2d.tasks.gsm8k import _canonical

    found = parse(reply)
    value = found[0] if found else None
    if value is None or isinstance(value, str) or not getattr(value, "is_number", False) or not value.is_real:
        return None
    if value.is_Rational:
        return _canonical(Fraction(int(value.p), int(value.q)))
    return _canonical(Fraction(str(float(value))).limit_denominator(10**9))


def math_verify_verdict(reply: str, gold: str) -> bool:
    """math-verify's own verdict on a reply: `verify(parse(gold), parse(reply))`."""
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(reply)))


def math_verify_agreement() -> dict[str, tuple[int, int]]:
    """(agreeing, total): s2d's reading and math-verify's alone against the golden GSM8k table's hand labels (the
    number a careful reader takes, None for none), and math-verify's verdicts against s2d's on the corpus above."""
    from test_grading import GSM8K

    t = GSM8k()
    return {"s2d_golden": (sum(t.extract(r) == a for r, a in GSM8K), len(GSM8K)),
            "math_verify_golden": (sum(math_verify_alone(r) == a for r, a in GSM8K), len(GSM8K)),
            "math_verify_corpus": (sum(math_verify_verdict(r, g) == s2d_gsm8k(r, g) for r, g, _ in GSM8K_CORPUS),
                                   len(GSM8K_CORPUS))}


def test_math_verify_side_by_side_is_what_the_docs_quote():
    from pathlib import Path

    counts = math_verify_agreement()
    assert counts["s2d_golden"][0] == counts["s2d_golden"][1]  # the golden table pins s2d's reading
    assert counts["math_verify_golden"][0] < counts["s2d_golden"][0]
    doc = (Path(__file__).resolve().parents[1] / "docs" / "grading.md").read_text()
    for name, (agree, total) in counts.items():
        assert f"{agree} of {total}" in doc, f"docs/grading.md should quote {name}: {agree} of {total}"


def agreement() -> dict[str, tuple[int, int]]:
    """(agreeing, total) per corpus: the figures the README quotes."""
    g = sum(s2d_gsm8k(r, gold) == lm_eval_flexible(r, gold) for r, gold, _ in GSM8K_CORPUS)
    e = sum(s2d_triviaqa(r, a, i) == triviaqa_exact(r, a) for r, a, i, _, _ in TRIVIAQA_CORPUS)
    c = sum(s2d_triviaqa(r, a, i) == triviaqa_contains(r, a) for r, a, i, _, _ in TRIVIAQA_CORPUS)
    j = sum(PairTask().extract(t) == fastchat_verdict(t) for t, _ in JUDGE_CORPUS)
    return {"gsm8k": (g, len(GSM8K_CORPUS)), "triviaqa_exact": (e, len(TRIVIAQA_CORPUS)),
            "triviaqa_contains": (c, len(TRIVIAQA_CORPUS)), "judge": (j, len(JUDGE_CORPUS))}


def test_the_corpus_holds_at_least_100_replies_and_the_readme_quotes_its_agreement():
    from pathlib import Path

    assert len(GSM8K_CORPUS) + len(TRIVIAQA_CORPUS) + len(JUDGE_CORPUS) >= 100
    readme = (Path(__file__).resolve().parents[1] / "docs" / "grading.md").read_text()
    for name, (agree, total) in agreement().items():
        assert f"{agree} of {total}" in readme, f"docs/grading.md should quote {name}: {agree} of {total}"
