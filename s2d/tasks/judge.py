"""Pairwise judging tasks (paper §3.3, BSM): which of two replies to a user query is better.

Every pair is judged in both orders: it becomes two inputs, `<pair>:ab` (A = first reply) and `<pair>:ba`
(the replies swapped), with the gold verdict mapped to each order. Accuracy on these inputs is the
agreement with the human label, counted over both orders; `inconsistent` is the share of pairs whose
verdict changes when the order is swapped.

Sources: OASST2 message trees (English, first turn, ranked assistant replies): unlabeled train pairs from
its train split, a labeled eval split from its validation split; MT-bench human pairwise judgments for
out-of-distribution eval. With `max_input_tokens`, long replies are shortened (marked) so that every
prompt fits the budget; the template and the question are never cut.
"""

from __future__ import annotations

import ast
import json
import logging
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from s2d.tasks.base import (DataNotFound, check_data_file, found_files, load_records, load_source, require_field,
                            resolve_data_path)
from s2d.tasks.grading import committed_text, final_segment, one_of
from s2d.types import Example

log = logging.getLogger(__name__)

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
    marker's segment naming A, B or a tie ("Final answer: Assistant B"), as a CoT judge writes it."""
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
    seg = re.sub(r"\bA\s+tie\b", "tie", seg)
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

    grader_version = 2  # 2: the last verdict tag counts, instruction echoes skipped, "Final answer: A" read
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


# ---- OASST2 -----------------------------------------------------------------------------------------------

def trees_from_messages(rows: list[dict]) -> list[dict]:
    """Nest flat OASST2 messages (the hub's layout: message_id / parent_id) into trees like `*.trees.jsonl`."""
    nodes = {r["message_id"]: {**r, "replies": []} for r in rows}
    roots = []
    for node in nodes.values():
        parent = node.get("parent_id")
        if parent and parent in nodes:
            nodes[parent]["replies"].append(node)
        elif not parent:
            roots.append({"message_tree_id": node.get("message_tree_id", node["message_id"]), "prompt": node})
    return roots


PAIRINGS = ("best_two", "all_ranked")


def first_turn_pairs(tree: dict, lang: str = "en", pairing: str = "best_two") -> list[tuple[str, str, str, str]]:
    """(pair id suffix, query, better reply, worse reply) from a tree's first turn, by the replies' ranks.

    Needs a prompter root in `lang` and at least two non-deleted assistant replies with a rank (rank 0 is
    the human-preferred one). `best_two`: the two best-ranked replies, if their ranks differ. `all_ranked`:
    every pair of differently ranked replies (the paper's 19,672 train inputs need more than one per query).
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"task.pairing / task.eval_pairing='{pairing}': allowed values are {', '.join(PAIRINGS)}")
    root = tree.get("prompt") or {}
    if root.get("role") != "prompter" or root.get("lang") != lang or root.get("deleted"):
        return []
    replies = sorted((r for r in root.get("replies") or []
                      if r.get("role") == "assistant" and not r.get("deleted") and r.get("rank") is not None
                      and (r.get("text") or "").strip()), key=lambda r: r["rank"])
    if pairing == "best_two":
        if len(replies) < 2 or replies[0]["rank"] == replies[1]["rank"]:
            return []
        return [("", root["text"], replies[0]["text"], replies[1]["text"])]
    return [(f"#{i}-{j}", root["text"], replies[i]["text"], replies[j]["text"])
            for i in range(len(replies)) for j in range(i + 1, len(replies)) if replies[i]["rank"] < replies[j]["rank"]]


def first_turn_pair(tree: dict, lang: str = "en") -> tuple[str, str, str] | None:
    """(query, better reply, worse reply) of the two best-ranked first-turn replies; None if unusable."""
    pairs = first_turn_pairs(tree, lang)
    return pairs[0][1:] if pairs else None


def read_trees(path: Path) -> list[dict]:
    check_data_file(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    if rows and "prompt" not in rows[0] and "message_id" in rows[0]:
        return trees_from_messages(rows)
    for i, row in enumerate(rows, 1):
        require_field(row, "prompt", f"{path}: record {i}")
    return rows


class OASST2(PairTask):
    """Unlabeled train pairs from OASST2's train split and labeled eval pairs from its validation split
    (English, turn 1, ranked replies), as in the paper; or, with `path`, one file of trees cut by tree into
    disjoint eval and train parts (the staged topic-filtered sample: development and smoke runs only).

    Which reply is A is drawn with the seed, so the gold verdict is not always A.
    """

    name = "oasst2"

    def __init__(self, n_train: int | None = 6, n_eval: int | None = 8, path: str | None = "oasst2/oasst2_filtered.jsonl",
                 train_path: str | None = None, eval_path: str | None = None,
                 hub_id: str | None = "OpenAssistant/oasst2", hub_train_split: str = "train",
                 hub_eval_split: str = "validation", lang: str = "en", pairing: str = "best_two",
                 eval_pairing: str = "best_two", max_response_chars: int = 0, max_input_tokens: int = 0,
                 min_reply_tokens: int = 16, model: Any = None, seed: int = 0, data_dir: str | None = None):
        for key, value in (("task.pairing", pairing), ("task.eval_pairing", eval_pairing)):
            if value not in PAIRINGS:
                raise ValueError(f"{key}='{value}': allowed values are {', '.join(PAIRINGS)}")
        self.n_train, self.n_eval = n_train, n_eval
        self.path, self.train_path, self.eval_path = path, train_path, eval_path
        self.hub_id, self.hub_splits, self.lang = hub_id, {"train": hub_train_split, "eval": hub_eval_split}, lang
        self.pairing, self.eval_pairing = pairing, eval_pairing
        self.max_response_chars, self.max_input_tokens, self.min_reply_tokens = max_response_chars, max_input_tokens, min_reply_tokens
        self.model, self.seed, self.data_dir = model, seed, data_dir
        self._split: tuple[list[Example], list[Example]] | None = None
        self._budget: InputBudget | None = None
        self._stats: dict[str, dict[str, int]] = {}

    def budget(self) -> InputBudget | None:
        """The token budget of every judge prompt (None when task.max_input_tokens is 0)."""
        if self.max_input_tokens and self._budget is None:
            if self.model is None:
                raise ValueError("task.max_input_tokens counts tokens with the model's tokenizer: set task.model "
                                 "(the task configs pass ${model}) or task.max_input_tokens=0")
            self._budget = InputBudget(load_tokenizer(self.model), self.max_input_tokens, self.min_reply_tokens,
                                       self.format_answer("A"))
        return self._budget

    def _split_trees(self, split: str) -> list[dict]:
        key, value = ("task.train_path", self.train_path) if split == "train" else ("task.eval_path", self.eval_path)
        rows, source = load_source(f"oasst2 {split} split", value, key, self.data_dir, self.hub_id,
                                   hub_kwargs={"split": self.hub_splits[split]}, read=read_trees)
        return trees_from_messages(rows) if source == self.hub_id else rows

    def data_files(self) -> dict[str, Path]:
        return found_files(self.data_dir, path=self.path, train_path=self.train_path, eval_path=self.eval_path)

    def _take(self, trees: list[dict], n: int | None, pairing: str, rng: random.Random, split: str,
              source: str) -> tuple[list[Example], int]:
        """Up to n pairs (None: all) from the trees in order, both orders each; also how many trees it read."""
        out, pairs, shortened, dropped, used = [], 0, 0, 0, 0
        budget = self.budget()
        for tree in trees:
            if n is not None and pairs >= n:
                break
            used += 1
            for suffix, query, better, worse in first_turn_pairs(tree, self.lang, pairing):
                if n is not None and pairs >= n:
                    break
                first, second, gold = (better, worse, "A") if rng.random() < 0.5 else (worse, better, "B")
                got = pair_examples(f"{tree.get('message_tree_id')}{suffix}", query, first, second, gold, None,
                                    self.max_response_chars, budget)
                if not got:
                    dropped += 1
                    continue
                pairs += 1
                shortened += bool(got[0].meta.get("shortened"))
                out += got if split == "eval" else [Example(e.id, e.input, None, e.meta) for e in got]
        if n is not None and pairs < n:
            too_long = f", {dropped} more whose question leaves under task.min_reply_tokens within " \
                       f"task.max_input_tokens={self.max_input_tokens}" if dropped else ""
            raise ValueError(f"oasst2 {split}: {source} gives {pairs} usable pairs ({self.lang}, first turn, "
                             f"pairing={pairing}{too_long}) but task.n_{split}={n}; lower task.n_{split} or use a "
                             f"larger source")
        self._stats[split] = {"pairs": pairs, "shortened": shortened, "dropped_too_long": dropped}
        return out, used

    def _pairs(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            rng = random.Random(self.seed)
            pool = self._pool()
            if pool is not None:
                # One file for both splits: eval takes whole trees first, train the trees after them.
                rng.shuffle(pool)
                source = f"task.path='{self.path}'"
                eval_, used = self._take(pool, self.n_eval, self.eval_pairing, rng, "eval", source)
                train, _ = self._take(pool[used:], self.n_train, self.pairing, rng, "train", source)
            else:
                eval_, train = [], []
                if self.n_eval != 0:
                    trees = self._split_trees("eval")
                    rng.shuffle(trees)
                    eval_, _ = self._take(trees, self.n_eval, self.eval_pairing, rng, "eval", "the eval split")
                if self.n_train != 0:
                    trees = self._split_trees("train")
                    rng.shuffle(trees)
                    train, _ = self._take(trees, self.n_train, self.pairing, rng, "train", "the train split")
            self._split = train, eval_
        return self._split

    def _pool(self) -> list[dict] | None:
        """The trees of `task.path` (one file cut into both splits); None when it is unset, or missing with a
        hub id to fall back to."""
        if not self.path:
            return None
        try:
            return read_trees(resolve_data_path(self.path, self.data_dir, "task.path"))
        except DataNotFound as e:
            if not self.hub_id:
                raise
            log.warning("oasst2: %s; reading the hub's splits of %s instead", e, self.hub_id)
            return None

    def train_examples(self) -> list[Example]:
        return self._pairs()[0]

    def eval_examples(self) -> list[Example]:
        return self._pairs()[1]

    def split_stats(self) -> dict[str, int]:
        """Pairs per split, how many were shortened to fit task.max_input_tokens, how many did not fit at all."""
        self.train_examples(), self.eval_examples()
        return {f"{split}_{k}": v for split, stats in self._stats.items() for k, v in stats.items()}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": self.n_train, "n_eval": self.n_eval, "path": self.path,
                "train_path": self.train_path, "eval_path": self.eval_path, "hub_id": self.hub_id,
                "hub_splits": self.hub_splits, "lang": self.lang, "pairing": self.pairing,
                "eval_pairing": self.eval_pairing, "max_response_chars": self.max_response_chars,
                "max_input_tokens": self.max_input_tokens, "min_reply_tokens": self.min_reply_tokens}


# ---- MT-bench --------------------------------------------------------------------------------------------------

def parse_conversation(value: Any, where: str) -> list[dict]:
    """A conversation cell: a list of {role, content}, or its Python-literal text (the CSV's form)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{where}: conversation is not a Python literal list ({e})") from e
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, dict) and "content" in m for m in value):
        raise ValueError(f"{where}: conversation must be a list of {{'role', 'content'}} messages")
    return list(value)


WINNERS = {"model_a": "A", "model_b": "B", "tie": "C", "tie (bothbad)": "C"}


class MTBench(PairTask):
    """Eval on MT-bench human pairwise judgments (turn 1), per category; train on OASST2 pairs as `oasst2`.

    So `task=mt_bench` distils on the same unlabeled OASST2 pairs and evaluates out of distribution. The
    train pairs come from an `OASST2` source built from the remaining keys (task=oasst2's keys).
    """

    name = "mt_bench"

    def __init__(self, judgments_path: str = "mt_bench_human_judgments/mtbench_stratified_198.csv",
                 questions_path: str = "mt_bench/question.jsonl", judgments_hub_id: str | None = "lmsys/mt_bench_human_judgments",
                 judgments_split: str = "human", n_eval_judgments: int = 12, turn: int = 1, **oasst2):
        oasst2.setdefault("n_eval", 0)
        self.oasst2 = OASST2(**oasst2)
        self.judgments_path, self.questions_path = judgments_path, questions_path
        self.judgments_hub_id, self.judgments_split = judgments_hub_id, judgments_split
        self.n_eval_judgments, self.turn = n_eval_judgments, turn
        self.seed, self.data_dir = self.oasst2.seed, self.oasst2.data_dir
        self._stats: dict[str, dict[str, int]] = {}

    def train_examples(self) -> list[Example]:
        return self.oasst2.train_examples()

    def split_stats(self) -> dict[str, int]:
        self.eval_examples()
        return {**self.oasst2.split_stats(),
                **{f"eval_{k}": v for k, v in self._stats.get("eval", {}).items()}}

    def data_files(self) -> dict[str, Path]:
        return {**self.oasst2.data_files(),
                **found_files(self.data_dir, judgments_path=self.judgments_path, questions_path=self.questions_path)}

    def _judgments(self) -> list[dict]:
        return load_source("mt_bench judgments", self.judgments_path, "task.judgments_path", self.data_dir,
                           self.judgments_hub_id, hub_key="task.judgments_hub_id",
                           hub_kwargs={"split": self.judgments_split})[0]

    def _categories(self) -> dict[int, str]:
        try:
            p = resolve_data_path(self.questions_path, self.data_dir, "task.questions_path")
        except DataNotFound:
            return {}
        return {int(r["question_id"]): r["category"] for r in load_records(p)}

    def eval_examples(self) -> list[Example]:
        categories = self._categories()
        rows = [r for r in self._judgments() if int(r.get("turn", 1)) == self.turn]
        rng = random.Random(self.seed)
        order = list(range(len(rows)))
        rng.shuffle(order)
        out, shortened, dropped = [], 0, 0
        budget = self.oasst2.budget()
        for i in order:
            if self.n_eval_judgments and len(out) >= 2 * self.n_eval_judgments:
                break
            r, where = rows[i], f"mt_bench judgment row {i + 1}"
            winner = str(require_field(r, "winner", where))
            if winner not in WINNERS:
                raise ValueError(f"{where}: winner '{winner}' is not one of {', '.join(WINNERS)}")
            conv_a = parse_conversation(require_field(r, "conversation_a", where), where)
            conv_b = parse_conversation(require_field(r, "conversation_b", where), where)
            user = [m["content"] for m in conv_a if m.get("role") == "user"]
            reply_a = [m["content"] for m in conv_a if m.get("role") == "assistant"]
            reply_b = [m["content"] for m in conv_b if m.get("role") == "assistant"]
            if not user or not reply_a or not reply_b:
                raise ValueError(f"{where}: a conversation lacks the first user or assistant turn")
            qid = int(require_field(r, "question_id", where))
            pid = f"mt{qid}-{r.get('model_a')}-{r.get('model_b')}-{r.get('judge', i)}"
            got = pair_examples(pid, user[0], reply_a[0], reply_b[0], WINNERS[winner],
                                categories.get(qid, "unknown"), self.oasst2.max_response_chars, budget)
            dropped += not got
            shortened += bool(got and got[0].meta.get("shortened"))
            out += got
        if len(out) < 2 * self.n_eval_judgments:
            too_long = (f" ({dropped} more do not fit task.max_input_tokens={self.oasst2.max_input_tokens})"
                        if dropped else "")
            raise ValueError(f"mt_bench has {len(out) // 2} usable turn-{self.turn} judgments{too_long} but "
                             f"task.n_eval_judgments={self.n_eval_judgments}; lower it or use the full judgments file")
        self._stats["eval"] = {"pairs": len(out) // 2, "shortened": shortened, "dropped_too_long": dropped}
        return out

    def identity(self) -> dict[str, Any]:
        return {**self.oasst2.identity(), "name": self.name, "judgments_path": self.judgments_path,
                "n_eval_judgments": self.n_eval_judgments, "turn": self.turn}
