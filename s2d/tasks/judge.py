"""Pairwise judging tasks (paper §3.3, BSM): which of two replies to a user query is better.

Every pair is judged in both orders: it becomes two inputs, `<pair>:ab` (A = first reply) and `<pair>:ba`
(the replies swapped), with the gold verdict mapped to each order. Accuracy on these inputs is the
agreement with the human label, counted over both orders; `inconsistent` is the share of pairs whose
verdict changes when the order is swapped.

Sources: OASST2 message trees (English, first turn, two ranked assistant replies) for unlabeled train
pairs and a labeled eval split, and MT-bench human pairwise judgments for out-of-distribution eval.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from s2d.tasks.base import DataNotFound, check_data_file, load_records, require_field, resolve_data_path, take
from s2d.tasks.grading import committed_text, final_segment, one_of
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
                  max_chars: int) -> list[Example]:
    """The pair in both orders; gold is the verdict for (first, second) and is mapped for the swap."""
    query, first, second = (clip(t, max_chars) for t in (query, first, second))
    out = []
    for order, a, b, g in (("ab", first, second, gold), ("ba", second, first, swap_verdict(gold))):
        meta = {"pair": pid, "order": order, "query": query, "a": a, "b": b}
        if group:
            meta["group"] = group
        out.append(Example(id=f"{pid}:{order}", input=JUDGE_PROMPT.format(query=query, a=a, b=b), gold=g, meta=meta))
    return out


def clip(text: str, max_chars: int) -> str:
    text = text.strip()
    return text if max_chars <= 0 or len(text) <= max_chars else text[:max_chars].rstrip() + " [...]"


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


def first_turn_pair(tree: dict, lang: str = "en") -> tuple[str, str, str] | None:
    """(query, better reply, worse reply) from a tree's first turn, by the replies' ranks; None if unusable.

    Needs a prompter root in `lang` and at least two non-deleted assistant replies with a rank; the two
    best-ranked replies form the pair (rank 0 is the human-preferred one).
    """
    root = tree.get("prompt") or {}
    if root.get("role") != "prompter" or root.get("lang") != lang or root.get("deleted"):
        return None
    replies = [r for r in root.get("replies") or []
               if r.get("role") == "assistant" and not r.get("deleted") and r.get("rank") is not None
               and (r.get("text") or "").strip()]
    if len(replies) < 2:
        return None
    best, second = sorted(replies, key=lambda r: r["rank"])[:2]
    if best["rank"] == second["rank"]:
        return None
    return root["text"], best["text"], second["text"]


def read_trees(path: Path) -> list[dict]:
    check_data_file(path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    if rows and "prompt" not in rows[0] and "message_id" in rows[0]:
        return trees_from_messages(rows)
    for i, row in enumerate(rows, 1):
        require_field(row, "prompt", f"{path}: record {i}")
    return rows


class OASST2(PairTask):
    """Unlabeled train pairs and a labeled eval split from OASST2 trees (English, turn 1, two ranked replies).

    Which reply is A is drawn with the seed, so the gold verdict is not always A.
    """

    name = "oasst2"

    def __init__(self, n_train: int = 6, n_eval: int = 8, path: str = "oasst2/oasst2_filtered.jsonl",
                 hub_id: str | None = "OpenAssistant/oasst2", hub_split: str = "validation", lang: str = "en",
                 max_response_chars: int = 400, seed: int = 0, data_dir: str | None = None):
        self.n_train, self.n_eval = n_train, n_eval
        self.path, self.hub_id, self.hub_split, self.lang = path, hub_id, hub_split, lang
        self.max_response_chars, self.seed, self.data_dir = max_response_chars, seed, data_dir
        self._split: tuple[list[Example], list[Example]] | None = None

    def _trees(self) -> list[dict]:
        if self.path:
            try:
                return read_trees(resolve_data_path(self.path, self.data_dir, "task.path"))
            except DataNotFound:
                if not self.hub_id:
                    raise
        if self.hub_id:
            import datasets

            try:
                rows = list(datasets.load_dataset(self.hub_id, split=self.hub_split))
            except Exception as e:  # offline, unknown id: one message naming every option
                raise DataNotFound(
                    f"oasst2: task.path='{self.path}' was not found (as given or under paths.data_dir="
                    f"'{self.data_dir}', settable by S2D_DATA_DIR) and task.hub_id='{self.hub_id}' could not be "
                    f"loaded ({type(e).__name__}: {e}). Set one of them."
                ) from e
            return trees_from_messages(rows)
        raise DataNotFound("oasst2: set task.path (a trees JSONL file) or task.hub_id")

    def _pairs(self) -> tuple[list[Example], list[Example]]:
        if self._split is None:
            pairs = []
            for tree in self._trees():
                got = first_turn_pair(tree, self.lang)
                if got:
                    pairs.append((str(tree.get("message_tree_id")), *got))
            rng = random.Random(self.seed)
            rng.shuffle(pairs)
            need = self.n_eval + self.n_train
            pairs = take(pairs, need, f"oasst2 ({self.lang}, first turn, two ranked replies)", "task.n_train + task.n_eval")
            built = []
            for pid, query, better, worse in pairs:
                first, second, gold = (better, worse, "A") if rng.random() < 0.5 else (worse, better, "B")
                built.append(pair_examples(pid, query, first, second, gold, None, self.max_response_chars))
            eval_ = [e for p in built[: self.n_eval] for e in p]
            train = [Example(e.id, e.input, None, e.meta) for p in built[self.n_eval:] for e in p]
            self._split = train, eval_
        return self._split

    def train_examples(self) -> list[Example]:
        return self._pairs()[0]

    def eval_examples(self) -> list[Example]:
        return self._pairs()[1]

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": self.n_train, "n_eval": self.n_eval, "path": self.path,
                "hub_id": self.hub_id, "lang": self.lang, "max_response_chars": self.max_response_chars}


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


class MTBench(OASST2):
    """Eval on MT-bench human pairwise judgments (turn 1), per category; train on OASST2 pairs as `oasst2`.

    So `task=mt_bench` distils on the same unlabeled OASST2 pairs and evaluates out of distribution.
    """

    name = "mt_bench"

    def __init__(self, judgments_path: str = "mt_bench_human_judgments/mtbench_stratified_198.csv",
                 questions_path: str = "mt_bench/question.jsonl", judgments_hub_id: str | None = "lmsys/mt_bench_human_judgments",
                 judgments_split: str = "human", n_eval_judgments: int = 12, turn: int = 1, **oasst2):
        oasst2.setdefault("n_eval", 0)
        super().__init__(**oasst2)
        self.judgments_path, self.questions_path = judgments_path, questions_path
        self.judgments_hub_id, self.judgments_split = judgments_hub_id, judgments_split
        self.n_eval_judgments, self.turn = n_eval_judgments, turn

    def _judgments(self) -> list[dict]:
        try:
            return load_records(resolve_data_path(self.judgments_path, self.data_dir, "task.judgments_path"))
        except DataNotFound:
            if not self.judgments_hub_id:
                raise
        import datasets

        try:
            return list(datasets.load_dataset(self.judgments_hub_id, split=self.judgments_split))
        except Exception as e:
            raise DataNotFound(
                f"mt_bench: task.judgments_path='{self.judgments_path}' was not found (as given or under "
                f"paths.data_dir='{self.data_dir}', settable by S2D_DATA_DIR) and task.judgments_hub_id="
                f"'{self.judgments_hub_id}' could not be loaded ({type(e).__name__}). Set one of them."
            ) from e

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
        out = []
        for i in order[: self.n_eval_judgments] if self.n_eval_judgments else order:
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
            out += pair_examples(pid, user[0], reply_a[0], reply_b[0], WINNERS[winner],
                                 categories.get(qid, "unknown"), self.max_response_chars)
        if len(out) < 2 * self.n_eval_judgments:
            raise ValueError(f"mt_bench has {len(out) // 2} turn-{self.turn} judgments but task.n_eval_judgments="
                             f"{self.n_eval_judgments}; lower it or use the full judgments file")
        return out

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "name": self.name, "judgments_path": self.judgments_path,
                "n_eval_judgments": self.n_eval_judgments, "turn": self.turn}
