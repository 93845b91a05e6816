"""The CPU model organism: the embedded model, fine-tuned to reason step by step on synthetic tasks.

A 135M model answers last-letter and coin-flip questions no better with chain-of-thought than without, so
no System 2 method beats its System 1 and the paper's effect cannot show. The organism is that model after
supervised fine-tuning on code-written worked solutions (each task's `solution()`), always under the
System 2 prompt (`cot` with `instruction`) and never on a code-written direct answer. Trained on solutions
alone, it writes a solution under any prompt, so System 1 would reason too; `replay_per_task` items per
task therefore pair the bare System 1 prompt with the *base model's own* greedy System 1 reply (right or
wrong, as the base model had it), which keeps System 1 as it was. The paper's unsupervised loop then
runs on the organism unchanged, on fresh unlabeled inputs.

`Organism` is a model source (`model=organism`): it trains on first use and caches the result under
`<cache_dir>/<key>`, where the key hashes the base model's identity, the organism's tasks, instruction,
training config and seed, so an experiment trains it once and every later run loads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d.artifacts import is_done, mark_done, rewrite_jsonl, stage_lock
from s2d.llm.model import ModelSource
from s2d.methods.cot import CoT

log = logging.getLogger(__name__)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class Organism:
    """Model source whose weights are `base` fine-tuned on worked solutions of `tasks` (name → task config);
    `instruction` is the System 2 prompt it learns under (None: `method=cot`'s default)."""

    version = 1  # bump when how the organism is built changes (its solutions live in the tasks' versions)

    def __init__(self, name: str, base: DictConfig, tasks: DictConfig, instruction: str | None, train: DictConfig,
                 replay_per_task: int = 0, replay_max_new_tokens: int = 64, seed: int = 0,
                 cache_dir: str = "outputs/cache/organism", avoid: DictConfig | None = None,
                 distill: DictConfig | None = None):
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
        # Generation-time settings a config may pass to any model source.
        self.revision = None
        self.trust_remote_code = False

    @property
    def base(self) -> ModelSource:
        return instantiate(self.base_cfg)

    def key(self) -> str:
        from hydra.utils import get_class

        from s2d import cache

        versions = {name: getattr(get_class(node._target_), "version", 0) for name, node in self.tasks_cfg.items()}
        parts = ["organism", self.version, self.base.identity(), cache.content(self.tasks_cfg), versions,
                 self.instruction, cache.content(self.train), self.replay_per_task, self.replay_max_new_tokens, self.seed]
        dropped = self.dropped()
        if dropped:  # keyed by what it trains on: `avoid` matters only through the items it removes
            parts.append(dropped)
        return cache.digest(*parts)

    @property
    def directory(self) -> Path:
        return self.cache_dir / f"{self.name}-{self.key()}"

    def resolve(self) -> tuple[str, str | None]:
        return str(self.directory / "model"), None

    def identity(self) -> dict:
        return {"name": self.name, "organism": self.key(), "base": self.base.identity()}

    def avoided_inputs(self) -> set[str]:
        """Inputs (lower case, single-spaced) of every split of every task in `avoid`."""
        out = set()
        for node in self.avoid.values():
            task = instantiate(node)
            out |= {_norm(e.input) for e in task.train_examples() + task.eval_examples()}
        return out

    def dropped(self) -> dict[str, list[str]]:
        """Per task, the ids of its items left out because a task in `avoid` has the same input."""
        avoided = self.avoided_inputs()
        out = {}
        for name, node in self.tasks_cfg.items():
            ids = [e.id for e in instantiate(node).train_examples() if _norm(e.input) in avoided] if avoided else []
            if ids:
                out[name] = ids
        return out

    def items(self) -> list[tuple[str, object, list, list]]:
        """Per task: (name, task, items for worked solutions, items for System 1 replay); items whose input
        is an input of a task in `avoid` are dropped."""
        out = []
        avoided = self.avoided_inputs()
        for name, node in self.tasks_cfg.items():
            task = instantiate(node)
            if not hasattr(task, "solution"):
                raise ValueError(f"model.tasks.{name}: task '{task.name}' has no worked solutions to train on; "
                                 "the organism needs tasks with a solution() (last_letter, coin_flip, "
                                 "multiplication, gsm8k)")
            examples = [e for e in task.train_examples() if _norm(e.input) not in avoided]
            if self.replay_per_task >= len(examples):
                raise ValueError(f"model.replay_per_task={self.replay_per_task} leaves no worked solutions of "
                                 f"model.tasks.{name} ({len(examples)} items); lower it or raise that n_train")
            cut = len(examples) - self.replay_per_task
            out.append((name, task, examples[:cut], examples[cut:]))
        return out

    def pairs(self, replies: dict[tuple[str, str], str] | None = None) -> list[dict]:
        """(System 2 prompt → worked solution) rows, then (System 1 prompt → base model's reply) replay rows.

        `replies[(task name, item id)]` is the base model's reply to the bare prompt of each replay item.
        """
        method = CoT(self.instruction)
        rows = []
        for name, task, solved, replayed in self.items():
            rows += [{"task": name, "kind": "solution", "id": e.id, "prompt": method.prompt(task, e),
                      "target": task.solution(e)} for e in solved]
            rows += [{"task": name, "kind": "replay", "id": e.id, "prompt": task.prompt(e),
                      "target": replies[(name, e.id)]} for e in replayed if replies is not None]
        return rows

    def replay_replies(self) -> dict[tuple[str, str], str]:
        """The base model's greedy System 1 replies to the replay items (its behaviour before fine-tuning)."""
        from s2d.llm.hf import HFBackend
        from s2d.types import Sampling, request_seed

        wanted = [(name, task, e) for name, task, _, replayed in self.items() for e in replayed]
        if not wanted:
            return {}
        llm = HFBackend(self.base, progress=False)
        outs = llm.generate([task.prompt(e) for _, task, e in wanted],
                            Sampling(n=1, temperature=0.0, max_new_tokens=self.replay_max_new_tokens),
                            desc="organism replay", seeds=[request_seed(self.seed, name, e.id, "replay")
                                                           for name, _, e in wanted])
        llm.release()
        return {(name, e.id): o[0].text for (name, _, e), o in zip(wanted, outs)}

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
        from s2d.training.fit import drop_checkpoints, fit

        rows = self.pairs(self.replay_replies())
        rewrite_jsonl(out / "train.jsonl", rows)
        replay = sum(r["kind"] == "replay" for r in rows)
        log.info("organism: fine-tuning %s on %d worked solutions and %d System 1 replay pairs (%s), once; "
                 "cached in %s", self.base.name, len(rows) - replay, replay, ", ".join(self.tasks_cfg), out)
        info = fit([(r["prompt"], r["target"]) for r in rows], self.base, self.train, out, self.seed)
        if not info.pop("global_zero"):
            return
        dropped = self.dropped()
        counts = {n: {**{k: sum(r["task"] == n and r["kind"] == k for r in rows) for k in ("solution", "replay")},
                      **({"dropped_as_loop_inputs": len(dropped[n])} if n in dropped else {})}
                  for n in self.tasks_cfg}
        mark_done(out, {"stage": "organism", **info, "tasks": counts})
        drop_checkpoints(out)
        log.info("organism: %d steps in %.0f s, final loss %s", info["steps"], info["seconds"], info["train/loss"])

    def load(self, dtype: str = "float32"):
        self.build()
        return ModelSource(name=self.name, name_or_path=self.resolve()[0]).load(dtype)


# The paper's figures for the organism's rows (Yu et al. 2024, Tables 1, 2 and 4; Llama-2-70B-chat):
# task name → (table, the paper's task, {system: (accuracy %, tokens)}).
PAPER_ROWS = {
    "last_letter": ("Table 1", "last letter (2-step RaR)",
                    {"system1": (30.0, 27.1), "system2": (44.5, 41.5), "distilled": (98.0, 25.5)}),
    "coin_flip": ("Table 1", "coin flip (2-step RaR)",
                  {"system1": (56.1, 61.9), "system2": (77.2, 112.4), "distilled": (75.7, 50.3)}),
    "multiplication": ("Table 4", "GSM8k (CoT zero-shot, k=1)",
                       {"system1": (7.58, 57), "system2": (52.77, 270), "distilled": (7.13, 18)}),
    "triviaqa": ("Table 2", "TriviaQA with opinions, biased (S2A)",
                 {"system1": (51.6, 165), "system2": (76.0, 147), "distilled": (81.3, 56)}),
}
# Issue 19's goals per row: (System 2 − System 1 at least, distilled at least System 2 − this) in points;
# None: the row is a control where distillation is expected to fail.
GOALS = {"last_letter": (30, 10), "coin_flip": (30, 5), "multiplication": (15, None), "triviaqa": (20, 5)}


def paper_table(runs: list[dict]) -> str:
    """Markdown: each organism row's System 1 / System 2 / distilled accuracy (Wilson 95% interval, n) and
    tokens per input beside the paper's, and whether issue 19's goal for the row was met."""
    from s2d.report import interval, percent

    lines = ["| row | system | organism accuracy [95% CI] (n) | tokens | paper accuracy | paper tokens |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for r in sorted(runs, key=lambda r: list(PAPER_ROWS).index(r["task"]) if r["task"] in PAPER_ROWS else 99):
        m, (table, what, paper) = r["metrics"], PAPER_ROWS.get(r["task"], ("", r["task"], {}))
        for system in ("system1", "system2", "distilled"):
            acc = m.get(f"{system}/accuracy")
            shown = percent(acc, *interval(m, system), m.get(f"{system}/n")) if acc is not None else "—"
            tokens = m.get(f"{system}/tokens_per_input")
            p_acc, p_tok = paper.get(system, (None, None))
            lines.append(f"| {r['task']} ({r['method']}, {m.get('filter/seen')} inputs) | {system} | {shown} | "
                         f"{'—' if tokens is None else f'{tokens:.1f}'} | "
                         f"{'' if p_acc is None else f'{p_acc}% ({table}: {what})'} | {'' if p_tok is None else p_tok} |")
        verdicts.append(goal_verdict(r["task"], m))
    return "\n".join(lines) + "\n\nGoals (issue 19):\n\n" + "\n".join(f"- {v}" for v in verdicts if v) + "\n"


def goal_verdict(task: str, m: dict) -> str | None:
    """One line: the row's System 2 gain and distilled gap against its goal, met or not, in points."""
    if task not in GOALS or m.get("system2/accuracy") is None:
        return None
    gain_goal, gap_goal = GOALS[task]
    s1, s2, d = (100 * (m.get(f"{s}/accuracy") or 0.0) for s in ("system1", "system2", "distilled"))
    gain = f"System 2 − System 1 = {s2 - s1:+.1f} points (goal ≥ +{gain_goal}: {'met' if s2 - s1 >= gain_goal else 'not met'})"
    if gap_goal is None:
        # failing: the distilled model recovers less than half of System 2's gain over System 1
        failed = d - s1 < (s2 - s1) / 2
        dist = f"distilled {d:.1f}% vs System 2 {s2:.1f}% (control: expected to fail, {'did' if failed else 'did not'})"
    else:
        dist = (f"distilled − System 2 = {d - s2:+.1f} points (goal ≥ −{gap_goal}: "
                f"{'met' if d >= s2 - gap_goal else 'not met'})")
    return f"{task}: {gain}; {dist}"


class PaperTable(Callback):
    """Hydra callback (experiments/organism/paper.yaml): after the multirun, `paper.md` in the sweep
    directory holds the organism's rows next to the paper's tables."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from s2d.report import load_runs

        sweep_dir = Path(config.hydra.sweep.dir)
        text = "# The organism's rows next to the paper\n\n" + paper_table(load_runs(sweep_dir))
        (sweep_dir / "paper.md").write_text(text)
        print(text)
        log.info("wrote %s", sweep_dir / "paper.md")
