"""OASST2 pairwise judging (paper §3.3, BSM): message trees (English, first turn, ranked assistant replies) give
unlabeled train pairs from the train split and a labeled eval split from the validation split.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from s2d.tasks.base import DataNotFound, check_data_file, found_files, load_source, require_field, resolve_data_path
from s2d.tasks.judge import InputBudget, PairTask, load_tokenizer, pair_examples
from s2d.types import Example

log = logging.getLogger(__name__)


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
