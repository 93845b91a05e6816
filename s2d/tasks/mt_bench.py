"""MT-bench pairwise judging (paper §3.3, BSM): human pairwise judgments for out-of-distribution eval, per
category; the train pairs are OASST2's.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

from s2d.tasks.base import DataNotFound, found_files, load_records, load_source, require_field, resolve_data_path
from s2d.tasks.judge import PairTask, pair_examples
from s2d.tasks.oasst2 import OASST2
from s2d.types import Example


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
