"""The CPU model organism: the embedded model, fine-tuned to reason step by step on synthetic tasks.

A 135M model answers last-letter and coin-flip questions no better with chain-of-thought than without, so
no System 2 method beats its System 1 and the paper's effect cannot show. The organism is that model after
supervised fine-tuning on code-written worked solutions (each task's `solution()`), always under the
System 2 prompt (`cot` with `instruction`) and never on a code-written direct answer. Trained on solutions
alone, it writes a solution under any prompt, so System 1 would reason too; `replay_per_task` items per
task therefore pair the bare System 1 prompt with the *base model's own* greedy System 1 reply (right or
wrong, as the base model had it), which keeps System 1 as it was. A method with several calls can do the same for a later call (`call_replays`:
S2A's answer on a clean rewrite learns the base model's own reply to the bare question, since the base model
answers "Question: ... Answer without bias" worse than it answers the question). A filter with a model call can be
learnt too (`teach_filter`: USC's call on N of the base model's own sampled replies, its target the reply most of them
agree on, chosen by code without the gold). The paper's unsupervised loop then runs on the organism unchanged, on
fresh unlabeled inputs.

`Organism` is a model source (`model=organism`, like ModelSource in s2d/llm/model.py) built by a recipe: it
trains (methods' lessons, s2d/training), so it sits beside the stages, above llm. It trains on first use and caches the result under
`<cache_dir>/<key>`, where the key hashes the base model's identity, the organism's tasks, instruction,
training config and seed, so an experiment trains it once and every later run loads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d.artifacts import is_done, mark_done, rewrite_jsonl, stage_lock
from s2d.llm.model import ModelSource
from s2d.filters.base import teaching as teaching_filter
from s2d.methods.base import lessons, replaying
from s2d.methods.cot import CoT
from s2d.tasks.base import WorkedSolutions, require, version_of

log = logging.getLogger(__name__)

# The place in the key where a taught method's or filter's version once stood: none declared one (every key
# held 0), so a change to their lessons bumps Organism.version instead. A constant, so built organisms keep
# their keys.
LESSONS_SLOT = 0


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _keys(example) -> set[str]:
    """What makes two items the same question: the input, and the bare question when a task records one
    (TriviaQA's items wrap one question in several opinions)."""
    keys = {_norm(example.input)}
    if isinstance(example.meta.get("question"), str):
        keys.add("question: " + _norm(example.meta["question"]))
    return keys


class Organism:
    """Model source whose weights are `base` fine-tuned on worked solutions of `tasks` (name → task config);
    `instruction` is the System 2 prompt it learns under (None: `method=cot`'s default)."""

    version = 1  # bump when how the organism is built changes, a taught method's or filter's lessons included
    # (its solutions live in the tasks' versions)

    def __init__(self, name: str, base: DictConfig, tasks: DictConfig, instruction: str | None, train: DictConfig,
                 replay_per_task: int = 0, replay_max_new_tokens: int = 64, seed: int = 0,
                 cache_dir: str = "outputs/cache/organism", avoid: DictConfig | None = None,
                 distill: DictConfig | None = None, teach: DictConfig | None = None, call_replays: int = 0,
                 teach_filter: DictConfig | None = None, filter_lessons: int = 0,
                 filter_sampling: DictConfig | None = None):
        self.name = name
        self.replay_per_task = replay_per_task
        self.replay_max_new_tokens = replay_max_new_tokens
        self.base_cfg = base
        self.tasks_cfg = tasks
        # None: the cot method's own default prompt, so `method=cot` needs no override to match it.
        self.instruction = CoT(instruction).instruction
        self.train = train
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        # Task configs (name → node) whose train and eval inputs the organism never trains on: the loop's
        # inputs, drawn with the run's data_seed, so no code-written solution is ever for one of them.
        self.avoid = avoid if avoid is not None else {}
        # Distillation settings that suit this model (lr, max_epochs): read by the train configs, not here.
        self.distill = distill
        # Per task name, the method config whose calls it learns on that task's items (each call's code-written
        # target, the method's `lessons`); a task not named here learns cot's solution under `instruction`.
        self.teach = teach if teach is not None else {}
        # Per taught task, how many of its lesson items also carry the method's call replays (`replays`: a later
        # call of the method, e.g. S2A's answer on the clean rewrite, whose target is the base model's own reply
        # to the plain input), so that call behaves as the base model does on plain inputs. 0: none.
        self.call_replays = call_replays
        # A filter whose model call it learns (e.g. USC) on the first `filter_lessons` lesson items of each taught
        # task: the call's prompt lists `filter_sampling.n` replies of the base model to the item's plain prompt (the
        # one call replays use), sampled with `filter_sampling` (Sampling's fields); the target is the filter's
        # `lessons` (code-chosen).
        if filter_lessons and teach_filter is None:
            raise ValueError(f"model.filter_lessons={filter_lessons} needs model.teach_filter (the filter config "
                             "whose call the organism learns, e.g. _target_: s2d.filters.UniversalSelfConsistency)")
        if filter_lessons and not (filter_sampling and filter_sampling.get("n", 1) >= 2):
            raise ValueError("model.filter_sampling.n must be >= 2: a filter lesson lists several replies per item")
        self.teach_filter = teach_filter
        self.filter_lessons = filter_lessons
        self.filter_sampling = filter_sampling
        self._split: list | None = None  # the tasks and their items, built on first use (`_tasks`)
        # Generation-time settings a config may pass to any model source.
        self.revision = None
        self.trust_remote_code = False

    @property
    def base(self) -> ModelSource:
        return instantiate(self.base_cfg)

    def key(self) -> str:
        from hydra.utils import get_class

        from s2d import cache

        versions = {name: version_of(get_class(node._target_), f"model.tasks.{name}")
                    for name, node in self.tasks_cfg.items()}
        parts = ["organism", self.version, self.base.identity(), cache.content(self.tasks_cfg), versions,
                 self.instruction, cache.train_content(self.train), self.replay_per_task, self.replay_max_new_tokens, self.seed]
        if self.teach:  # keyed only when set, so organisms that learn cot alone keep their keys
            parts.append({name: [cache.content(node), LESSONS_SLOT] for name, node in self.teach.items()})
        if self.call_replays:  # likewise
            parts.append({"call_replays": self.call_replays})
        if self.filter_lessons:  # likewise
            parts.append({"teach_filter": [cache.content(self.teach_filter), LESSONS_SLOT],
                          "filter_lessons": self.filter_lessons, "filter_sampling": cache.content(self.filter_sampling)})
        dropped = self.dropped()
        if dropped:  # keyed by what it trains on: `avoid` matters only through the items it removes
            parts.append(dropped)
        return cache.digest(*parts)

    @property
    def directory(self) -> Path:
        return self.cache_dir / f"{self.name}-{self.key()}"

    def resolve(self) -> tuple[str, str | None]:
        return str(self.directory / "model"), None

    def tokenizer_source(self) -> tuple[str, str | None]:
        """The base model's: fine-tuning leaves the tokenizer as it was, and it is there before the build."""
        return self.base.tokenizer_source()

    def identity(self) -> dict:
        return {"name": self.name, "organism": self.key(), "base": self.base.identity()}

    def avoided_inputs(self) -> set[str]:
        """Inputs and questions (lower case, single-spaced) of every split of every task in `avoid`."""
        out = set()
        for node in self.avoid.values():
            task = instantiate(node)
            for e in task.train_examples() + task.eval_examples():
                out |= _keys(e)
        return out

    def method(self, name: str):
        """The method whose calls the organism learns on task `name`: `teach[name]`, else cot."""
        node = self.teach.get(name)
        return instantiate(node) if node is not None else CoT(self.instruction)

    def _tasks(self) -> list[tuple[str, object, list, list[str]]]:
        """Per task, built once (the key, the items and the build all ask): (name, task, its items whose input
        is in no task of `avoid`, the ids of those that are)."""
        if self._split is None:
            avoided = self.avoided_inputs()
            self._split = []
            for name, node in self.tasks_cfg.items():
                task = instantiate(node)
                if name not in self.teach:
                    require(task, WorkedSolutions, f"model.tasks.{name}: task '{task.name}' has no worked solutions "
                            "to train on; the organism needs tasks with a solution() (last_letter, coin_flip, "
                            f"multiplication, gsm8k), or a method in model.teach.{name} that teaches it")
                items = task.train_examples()
                self._split.append((name, task, [e for e in items if not _keys(e) & avoided],
                                    [e.id for e in items if _keys(e) & avoided]))
        return self._split

    def dropped(self) -> dict[str, list[str]]:
        """Per task, the ids of its items left out because a task in `avoid` has the same input."""
        return {name: ids for name, _, _, ids in self._tasks() if ids}

    def items(self) -> list[tuple[str, object, list, list]]:
        """Per task: (name, task, items for worked solutions, items for System 1 replay); items whose input
        is an input of a task in `avoid` are dropped."""
        out = []
        for name, task, examples, _ in self._tasks():
            if self.replay_per_task >= len(examples):
                raise ValueError(f"model.replay_per_task={self.replay_per_task} leaves no worked solutions of "
                                 f"model.tasks.{name} ({len(examples)} items); lower it or raise that n_train")
            cut = len(examples) - self.replay_per_task
            out.append((name, task, examples[:cut], examples[cut:]))
        return out

    def call_replays_of(self, name: str, task, solved: list) -> list[tuple[object, str, object, str]]:
        """(item, call, that call's prompt, the plain prompt whose base-model reply is its target) for the first
        `call_replays` lesson items of task `name`."""
        if not self.call_replays:
            return []
        method = replaying(self.method(name), "model.call_replays", self.call_replays, f"model.tasks.{name}")
        return [(e, call, prompt, plain) for e in solved[:self.call_replays]
                for call, prompt, plain in method.replays(task, e)]

    def filter_lessons_of(self, name: str, task, solved: list) -> list[tuple[object, str]]:
        """(item, the plain prompt whose sampled base-model replies the filter call lists) for the first
        `filter_lessons` lesson items of task `name`: the plain prompt of the method's last call replay."""
        if not self.filter_lessons:
            return []
        method = replaying(self.method(name), "model.filter_lessons", self.filter_lessons, f"model.tasks.{name}")
        return [(e, method.replays(task, e)[-1][2]) for e in solved[:self.filter_lessons]]

    def pairs(self, replies: dict[tuple, str] | None = None) -> list[dict]:
        """(System 2 call's prompt → code-written target) rows, one per call of the method it learns on that
        task (cot: one call, the worked solution); then (a later call's prompt → base model's reply to the
        plain input) call-replay rows; then (filter call's prompt → code-chosen target) filter-lesson rows; then
        (System 1 prompt → base model's reply) replay rows.

        `replies[(task name, item id)]` is the base model's reply to the bare prompt of each replay item,
        `replies[(task name, item id, call)]` its reply to each call replay's plain prompt, and
        `replies[(task name, item id, "filter")]` its sampled replies that a filter lesson lists.
        """
        rows = []
        for name, task, solved, replayed in self.items():
            method = self.method(name)
            rows += [{"task": name, "kind": "solution", "id": e.id, "call": stage, "prompt": prompt, "target": target}
                     for e in solved for stage, prompt, target in lessons(method, task, e, f"model.teach.{name}")]
            if replies is None:
                continue
            rows += [{"task": name, "kind": "call_replay", "id": e.id, "call": call, "prompt": prompt,
                      "target": replies[(name, e.id, call)]}
                     for e, call, prompt, _ in self.call_replays_of(name, task, solved)]
            if self.filter_lessons:
                filt = teaching_filter(instantiate(self.teach_filter))
                rows += [{"task": name, "kind": "filter_lesson", "id": e.id, "call": call, "prompt": prompt,
                          "target": target}
                         for e, _ in self.filter_lessons_of(name, task, solved)
                         for call, prompt, target in filt.lessons(task, e, replies[(name, e.id, "filter")])]
            rows += [{"task": name, "kind": "replay", "id": e.id, "prompt": task.prompt(e),
                      "target": replies[(name, e.id)]} for e in replayed]
        return rows

    def replay_replies(self) -> dict[tuple, str | list[str]]:
        """The base model's greedy replies (its behaviour before fine-tuning): to the bare System 1 prompt of
        each replay item, keyed (task, id), and to the plain prompt of each call replay, keyed (task, id, call);
        and its `filter_sampling.n` sampled replies to each filter lesson's plain prompt, keyed (task, id, "filter")."""
        from s2d.llm.hf import HFBackend
        from s2d.types import Sampling, request_seed

        wanted = []  # (key, prompt, seed)
        for name, task, solved, replayed in self.items():
            wanted += [((name, e.id, call), plain, request_seed(self.seed, name, e.id, f"replay:{call}"))
                       for e, call, _, plain in self.call_replays_of(name, task, solved)]
            wanted += [((name, e.id), task.prompt(e), request_seed(self.seed, name, e.id, "replay"))
                       for e in replayed]
        sampled = [((name, e.id, "filter"), plain, request_seed(self.seed, name, e.id, "filter"))
                   for name, task, solved, _ in self.items() for e, plain in self.filter_lessons_of(name, task, solved)]
        if not wanted and not sampled:
            return {}
        llm = HFBackend(self.base, progress=False)
        outs = llm.generate([p for _, p, _ in wanted],
                            Sampling(n=1, temperature=0.0, max_new_tokens=self.replay_max_new_tokens),
                            desc="organism replay", seeds=[s for _, _, s in wanted]) if wanted else []
        replies: dict[tuple, str | list[str]] = {key: o[0].text for (key, _, _), o in zip(wanted, outs)}
        if sampled:
            sampling = Sampling(**{"max_new_tokens": self.replay_max_new_tokens, **self.filter_sampling})
            outs = llm.generate([p for _, p, _ in sampled], sampling, desc="organism filter samples",
                                seeds=[s for _, _, s in sampled])
            replies.update({key: [c.text for c in o] for (key, _, _), o in zip(sampled, outs)})
        llm.release()
        return replies

    def build(self) -> Path:
        """Train the organism unless it is cached; returns its directory."""
        out = self.directory
        if is_done(out):
            return out
        with stage_lock(out):  # parallel cells wait for one build instead of training it twice
            if not is_done(out):
                self._build(out)
        return out

    def _build(self, out: Path) -> None:
        from s2d.training.checkpoints import drop_checkpoints
        from s2d.training.fit import fit

        rows = self.pairs(self.replay_replies())
        rewrite_jsonl(out / "train.jsonl", rows)
        made = {k: sum(r["kind"] == k for r in rows) for k in ("solution", "call_replay", "filter_lesson", "replay")}
        log.info("organism: fine-tuning %s on %d code-written lessons, %d call replays, %d filter lessons and %d "
                 "System 1 replay pairs (%s), once; cached in %s", self.base.name, made["solution"],
                 made["call_replay"], made["filter_lesson"], made["replay"], ", ".join(self.tasks_cfg), out)
        info = fit([(r["prompt"], r["target"]) for r in rows], self.base, self.train, out, self.seed)
        if not info.pop("global_zero"):
            return
        dropped = self.dropped()
        kinds = (("solution", "replay") + (("call_replay",) if self.call_replays else ())
                 + (("filter_lesson",) if self.filter_lessons else ()))
        counts = {n: {**{k: sum(r["task"] == n and r["kind"] == k for r in rows) for k in kinds},
                      **({"dropped_as_loop_inputs": len(dropped[n])} if n in dropped else {})}
                  for n in self.tasks_cfg}
        mark_done(out, {"stage": "organism", **info, "tasks": counts})
        drop_checkpoints(out)
        log.info("organism: %d steps in %.0f s, final loss %s", info["steps"], info["seconds"], info["train/loss"])

    def load(self, dtype: str = "float32"):
        self.build()
        return ModelSource(name=self.name, name_or_path=self.resolve()[0]).load(dtype)
