"""Pairwise judging (paper §3.3, BSM): which of two replies to a user query is better. What every judging task
shares: the judge prompt, verdict parsing, pairs in both orders, the input token budget and pair metrics.

Every pair is judged in both orders: it becomes two inputs, `<pair>:ab` (A = first reply) and `<pair>:ba`
(the replies swapped), with the gold verdict mapped to each order. Accuracy on these inputs is the
agreement with the human label, counted over both orders; `inconsistent` is the share of pairs whose
verdict changes when the order is swapped. With `max_input_tokens`, long replies are shortened (marked) so
that every prompt fits the budget; the template and the question are never cut.

The sources live apart: OASST2 pairs in `s2d.tasks.oasst2`, MT-bench human judgments in `s2d.tasks.mt_bench`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from s2d.tasks.base import DataNotFound
from s2d.tasks.grading import answer_clause, committed_text, final_segment, one_of
from s2d.types import Example

VERDICTS = ("A", "B", "C")  # C: tie
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")

# The question and the two replies, as every judging prompt (System 1 judge, BSM branch and solve) shows them.
PAIR_BLOCK = """[User question]
{query}

[Reply of Assistant A]
{a}

[Reply of Assistant B]
{b}"""

JUDGE_PROMPT = """Two AI assistants replied to the same user question. Decide which reply serves the user better: \
judge helpfulness, correctness, relevance and level of detail. The order of the replies, their length and the \
assistants' names must not sway you.

""" + PAIR_BLOCK + """

Give your verdict: [[A]] if Assistant A's reply is better, [[B]] if Assistant B's is better, [[C]] for a tie."""


_ASSISTANT = re.compile(r"\bassistant\s+([ab])\b", re.I)
_LETTER = re.compile(r"\b([AB])\b")
_TIE = re.compile(r"\b(?:tie|draw|equal(?:ly)?|neither|both)\b", re.I)
_HEDGED_TAGS = re.compile(r"\]\]\s*(?:or|and|/|,)\s*\[\[")


def parse_verdict(text: str, truncated: bool = False) -> str | None:
    """The verdict a judge's reply commits to: the last [[A]]/[[B]]/[[C]] tag outside lines that repeat the
    instructions (all three tags at once); "[[A]] or [[B]]" is a hedge (None). With no tag, the last answer
    marker's segment naming A, B or a tie ("Final answer: Assistant B"), as a CoT judge writes it, read before
    the explanation that may follow ("Final answer: B, because Assistant A's reply …" → B)."""
    text = committed_text(text, truncated)
    lines = [l for l in text.split("\n") if len({m.group(1) for m in _VERDICT.finditer(l)}) < 3]
    tagged = [l for l in lines if _VERDICT.search(l)]
    if tagged:
        line = tagged[-1]
        tags = [m.group(1) for m in _VERDICT.finditer(line)]
        if len(set(tags)) > 1 and _HEDGED_TAGS.search(line):
            return None
        return tags[-1]
    seg = final_segment("\n".join(lines))
    if seg is None:
        return None
    seg = answer_clause(re.sub(r"\bA\s+tie\b", "tie", seg))  # "B, because Assistant A's reply …" → B
    named = [m.group(1).upper() for m in _ASSISTANT.finditer(seg)] or [m.group(1) for m in _LETTER.finditer(seg)]
    if _TIE.search(seg):
        named.append("C")
    return one_of(named) if named else None


def swap_verdict(verdict: str | None) -> str | None:
    """A verdict on the swapped pair, in the original order (a tie stays a tie)."""
    return {"A": "B", "B": "A"}.get(verdict, verdict) if verdict else None


def pair_examples(pid: str, query: str, first: str, second: str, gold: str | None, group: str | None,
                  max_chars: int, budget: InputBudget | None = None) -> list[Example]:
    """The pair in both orders; gold is the verdict for (first, second) and is mapped for the swap.

    The question is never cut. Replies are cut at `max_chars` characters, then shortened to fit `budget`;
    shortened pairs carry meta["shortened"]. Empty list: the question alone does not fit the budget.
    """
    query, first, second = query.strip(), clip(first, max_chars), clip(second, max_chars)
    shortened = False
    if budget is not None:
        fitted = budget.fit(query, first, second)
        if fitted is None:
            return []
        first, second, shortened = fitted
    out = []
    for order, a, b, g in (("ab", first, second, gold), ("ba", second, first, swap_verdict(gold))):
        meta = {"pair": pid, "order": order, "query": query, "a": a, "b": b}
        if group:
            meta["group"] = group
        if shortened:
            meta["shortened"] = True
        out.append(Example(id=f"{pid}:{order}", input=JUDGE_PROMPT.format(query=query, a=a, b=b), gold=g, meta=meta))
    return out


SHORTENED = "[...]"  # where a reply was cut, so a reader (and the judge) sees that it goes on


def clip(text: str, max_chars: int) -> str:
    text = text.strip()
    return text if max_chars <= 0 or len(text) <= max_chars else text[:max_chars].rstrip() + " " + SHORTENED


class InputBudget:
    """Fits a judge prompt, as the model reads it (chat template applied), plus its verdict target into
    `max_tokens` tokens by shortening the two replies in proportion to their lengths, each ending in
    SHORTENED; the template and the question are never cut. The same rule builds train and eval inputs.
    """

    def __init__(self, tokenizer, max_tokens: int, min_reply_tokens: int = 16, target: str = "[[A]]"):
        self.tok, self.max_tokens, self.min_reply_tokens = tokenizer, max_tokens, min_reply_tokens
        # the SFT target (verdict + EOS) shares train.max_length with the prompt
        self.limit = max_tokens - len(self._ids(target)) - 1

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def length(self, query: str, a: str, b: str) -> int:
        """Tokens of the longer of the two orders' prompts."""
        from s2d.llm.base import encode_chat  # the count generation and training use

        return max(len(encode_chat(self.tok, JUDGE_PROMPT.format(query=query, a=x, b=y))) for x, y in ((a, b), (b, a)))

    def fit(self, query: str, a: str, b: str) -> tuple[str, str, bool] | None:
        """(a, b, shortened), or None when the question leaves under `min_reply_tokens` per reply."""
        if self.length(query, a, b) <= self.limit:
            return a, b, False
        fixed = self.length(query, SHORTENED, SHORTENED)
        room = self.limit - fixed
        if room < 2 * self.min_reply_tokens:
            return None
        ids_a, ids_b = self._ids(a), self._ids(b)
        while room > 0:
            keep_a = room * len(ids_a) // (len(ids_a) + len(ids_b))
            keep_a = min(len(ids_a), max(keep_a, room - len(ids_b)))
            cut = [self._cut(ids, keep) for ids, keep in ((ids_a, keep_a), (ids_b, room - keep_a))]
            over = self.length(query, *cut) - self.limit
            if over <= 0:
                return cut[0], cut[1], True
            room -= over  # re-tokenising the cut text can merge tokens differently: take off the excess
        return None

    def _cut(self, ids: list[int], keep: int) -> str:
        if keep >= len(ids):
            return self.tok.decode(ids)
        head = self.tok.decode(ids[:keep]).rstrip() if keep > 0 else ""
        return f"{head} {SHORTENED}" if head else SHORTENED


_TOKENIZERS: dict[tuple, Any] = {}


def load_tokenizer(model) -> Any:
    """The tokenizer of a model source (`model` config node), loaded once per process; GGUF files are read
    directly, and a model organism lends its base model's before it is built."""
    from transformers import AutoTokenizer

    src, gguf = model.tokenizer_source()
    key = (src, gguf, model.revision)
    if key not in _TOKENIZERS:
        kw = {"gguf_file": gguf} if gguf else {}
        if model.revision:
            kw["revision"] = model.revision
        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(src, trust_remote_code=bool(model.trust_remote_code), **kw)
        except OSError as e:
            raise DataNotFound(f"task.max_input_tokens needs the tokenizer of model '{model.name}' at '{src}' ({e}); "
                               "make the model available or set task.max_input_tokens=0") from e
    return _TOKENIZERS[key]


def pair_metrics(examples: list[Example], answers: dict[str, str | None], system: str) -> dict[str, float]:
    """`<system>/agreement` and `<system>/inconsistent`, overall and per group (e.g. MT-bench category)."""
    pairs: dict[str, dict[str, Example]] = defaultdict(dict)
    for ex in examples:
        pairs[ex.meta["pair"]][ex.meta["order"]] = ex
    groups: dict[str, list[tuple[list[bool], bool]]] = defaultdict(list)
    for both in pairs.values():
        if set(both) != {"ab", "ba"}:
            continue
        ab, ba = both["ab"], both["ba"]
        v_ab, v_ba = answers.get(ab.id), swap_verdict(answers.get(ba.id))
        agree = [answers.get(ab.id) == ab.gold, answers.get(ba.id) == ba.gold]
        inconsistent = v_ab is None or v_ba is None or v_ab != v_ba
        for key in {"", ab.meta.get("group") or ""}:  # overall, and the pair's group if it has one
            groups[key].append((agree, inconsistent))
    out: dict[str, float] = {}
    for key, items in groups.items():
        suffix = f"_{key}" if key else ""
        n = max(1, len(items))
        out[f"{system}/agreement{suffix}"] = sum(sum(a) for a, _ in items) / (2 * n)
        out[f"{system}/inconsistent{suffix}"] = sum(i for _, i in items) / n
        out[f"{system}/pairs{suffix}"] = len(items)
    return out


class PairTask:
    """What the judging tasks share: the judge prompt, verdict parsing and scoring, and pair metrics."""

    grader_version = 3  # 2: the last verdict tag counts, instruction echoes skipped, "Final answer: A" read;
    # 3: an untagged verdict is read before its explanation ("B, because Assistant A …"), check steps skipped
    version = 1  # bump when the judge prompt or how pairs are built changes: cached stages are then redone
    train_only_keys = ("n_train", "pairing")  # eval pairs are cut before train pairs, whatever their number

    rephrase_note = ""
    respond_suffix = ""

    def prompt(self, example: Example) -> str:
        return example.input

    def extract(self, text: str, truncated: bool = False) -> str | None:
        return parse_verdict(text, truncated)

    def score(self, answer: str | None, example: Example) -> bool:
        return answer is not None and answer == example.gold

    def format_answer(self, answer: str) -> str:
        return f"[[{answer}]]"

    def extra_metrics(self, examples: list[Example], answers: dict[str, str | None], system: str) -> dict:
        return pair_metrics(examples, answers, system)
