"""MT-bench pairwise judging (paper §3.3, BSM): human pairwise judgments for out-of-distribution eval, per
category; the train pairs are OASST2's.
"""

from __future__ import annotations

import ast
import logging
import random
from pathlib import Path
from typing import Any

from s2d.tasks.base import DataNotFound, found_files, load_records, load_source, require_field, resolve_data_path
from s2d.tasks.judge import PairTask, pair_examples
from s2d.tasks.oasst2 import OASST2
from s2d.types import Example

log = logging.getLogger(__name__)

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
TURNS = (1, 2)
VOTERS = ("all", "experts")
FOLLOW_UP = "[Follow-up question of the same user: judge the replies to it]"
FIRST_REPLY, SECOND_REPLY = "[Reply to the first question]", "[Reply to the follow-up question]"


def turn_pair(conv_a: list[dict], conv_b: list[dict], turn: int, where: str) -> tuple[str, str, str]:
    """(query, reply A, reply B) of one judged turn. Turn 1: the first question and the first replies. Turn 2:
    both turns, as a judge of the second turn sees them: the first question and the follow-up in the query,
    and each assistant's own first reply before its reply to the follow-up (the two conversations differ
    from the first reply on)."""
    users = [m["content"] for m in conv_a if m.get("role") == "user"]
    replies = [[m["content"] for m in conv if m.get("role") == "assistant"] for conv in (conv_a, conv_b)]
    if len(users) < turn or any(len(r) < turn for r in replies):
        raise ValueError(f"{where}: a conversation lacks the user or assistant message of turn {turn}")
    if turn == 1:
        return users[0], replies[0][0], replies[1][0]
    query = f"{users[0].strip()}\n\n{FOLLOW_UP}\n{users[1].strip()}"
    a, b = (f"{FIRST_REPLY}\n{r[0].strip()}\n\n{SECOND_REPLY}\n{r[1].strip()}" for r in replies)
    return query, a, b


class MTBench(PairTask):
    """Eval on MT-bench human pairwise judgments of one turn (`turn`: 1, or 2 with both turns in the prompt),
    per category; train on OASST2 pairs as `oasst2`.

    So `task=mt_bench` distils on the same unlabeled OASST2 pairs and evaluates out of distribution. The
    train pairs come from an `OASST2` source built from the remaining keys (task=oasst2's keys). `n_eval`:
    judgments drawn with the seed, each judged in both orders (null or 0: all of the turn's judgments).
    `voters`: `all`, or `experts` (only votes whose `judge` id starts with "expert"; the hub's split has the
    column, the shipped stratified CSV does not).
    """

    name = "mt_bench"

    def __init__(self, judgments_path: str | None = "mt_bench_human_judgments/mtbench_stratified_198.csv",
                 questions_path: str | None = "mt_bench/question.jsonl",
                 judgments_hub_id: str | None = "lmsys/mt_bench_human_judgments", judgments_split: str = "human",
                 judgments_revision: str | None = None, n_eval: int | None = 12, turn: int = 1, voters: str = "all",
                 **oasst2):
        if turn not in TURNS:
            raise ValueError(f"task.turn={turn}: allowed values are {', '.join(map(str, TURNS))}")
        if voters not in VOTERS:
            raise ValueError(f"task.voters='{voters}': allowed values are {', '.join(VOTERS)}")
        oasst2["n_eval"] = 0  # OASST2 gives the train pairs only; n_eval counts MT-bench judgments
        self.oasst2 = OASST2(**oasst2)
        self.judgments_path, self.questions_path = judgments_path, questions_path
        self.judgments_hub_id, self.judgments_split = judgments_hub_id, judgments_split
        self.judgments_revision, self.voters = judgments_revision, voters
        self.n_eval, self.turn = n_eval, turn
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
                           hub_kwargs={"split": self.judgments_split}, revision=self.judgments_revision)[0]

    def _categories(self) -> dict[int, str]:
        """question_id -> category from the question file; without one, a warning, and every category is
        "unknown" (the per-category figures are then one group)."""
        if not self.questions_path:
            log.warning("mt_bench: task.questions_path is null, so every judgment's category is 'unknown'; set it "
                        "to MT-bench's question.jsonl (shipped with s2d as mt_bench/question.jsonl)")
            return {}
        try:
            p = resolve_data_path(self.questions_path, self.data_dir, "task.questions_path")
        except DataNotFound as e:
            log.warning("mt_bench: %s; every judgment's category is 'unknown'", e)
            return {}
        return {int(r["question_id"]): r["category"] for r in load_records(p)}

    def _voted(self, rows: list[dict]) -> list[dict]:
        if self.voters == "all":
            return rows
        if rows and "judge" not in rows[0]:
            raise ValueError("mt_bench: task.voters=experts needs the judgments' 'judge' column, which "
                             f"task.judgments_path='{self.judgments_path}' lacks; set task.judgments_path=null to read "
                             f"the hub's '{self.judgments_split}' split of {self.judgments_hub_id}")
        return [r for r in rows if str(r.get("judge", "")).startswith("expert")]

    def eval_examples(self) -> list[Example]:
        categories = self._categories()
        rows = [r for r in self._voted(self._judgments()) if int(r.get("turn", 1)) == self.turn]
        unknown = {int(r["question_id"]) for r in rows if "question_id" in r} - set(categories)
        if categories and unknown:
            log.warning("mt_bench: %d question ids are not in task.questions_path (%s); their category is 'unknown'",
                        len(unknown), ", ".join(map(str, sorted(unknown)[:5])))
        rng = random.Random(self.seed)
        order = list(range(len(rows)))
        rng.shuffle(order)
        out, shortened, dropped = [], 0, 0
        budget = self.oasst2.budget()
        want = self.n_eval or 0  # null or 0: every judgment of the turn
        for i in order:
            if want and len(out) >= 2 * want:
                break
            r, where = rows[i], f"mt_bench judgment row {i + 1}"
            winner = str(require_field(r, "winner", where))
            if winner not in WINNERS:
                raise ValueError(f"{where}: winner '{winner}' is not one of {', '.join(WINNERS)}")
            conv_a = parse_conversation(require_field(r, "conversation_a", where), where)
            conv_b = parse_conversation(require_field(r, "conversation_b", where), where)
            query, reply_a, reply_b = turn_pair(conv_a, conv_b, self.turn, where)
            qid = int(require_field(r, "question_id", where))
            pid = f"mt{qid}-{r.get('model_a')}-{r.get('model_b')}-{r.get('judge', i)}"
            if self.turn != 1:
                pid += f"-t{self.turn}"
            got = pair_examples(pid, query, reply_a, reply_b, WINNERS[winner],
                                categories.get(qid, "unknown"), self.oasst2.max_response_chars, budget)
            dropped += not got
            shortened += bool(got and got[0].meta.get("shortened"))
            out += got
        if len(out) < 2 * want:
            too_long = (f" ({dropped} more do not fit task.max_input_tokens={self.oasst2.max_input_tokens})"
                        if dropped else "")
            voters = f", voters={self.voters}" if self.voters != "all" else ""
            raise ValueError(f"mt_bench has {len(out) // 2} usable turn-{self.turn} judgments{too_long}{voters} but "
                             f"task.n_eval={self.n_eval}; lower it or use the full judgments (task.judgments_path=null)")
        self._stats["eval"] = {"pairs": len(out) // 2, "shortened": shortened, "dropped_too_long": dropped}
        return out

    def identity(self) -> dict[str, Any]:
        return {**self.oasst2.identity(), "name": self.name, "judgments_path": self.judgments_path,
                "judgments_hub_id": self.judgments_hub_id, "judgments_revision": self.judgments_revision,
                "n_eval": self.n_eval, "turn": self.turn, "voters": self.voters}
