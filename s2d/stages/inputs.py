"""Stage 0: inputs the base model helps write (TriviaQA's wrong answers), made once per model and task."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_jsonl, rewrite_jsonl, stage_lock
from s2d.llm.base import render_prompt
from s2d.stages import resolved, stage_dir
from s2d.types import Sampling, request_seed

log = logging.getLogger(__name__)


def run(cfg: DictConfig, llm=None) -> Path | None:
    """Stage 0: the inputs the base model helps write (a task's optional "drafts" part, e.g. TriviaQA's
    model-made wrong answers), once per model and task in `<cache>/inputs/<key>`; None when the task needs
    none. `llm` is the base model's backend; it is only called when the drafts are not cached yet."""
    task = instantiate(cfg.task)
    if not task_needs_model(task):
        return None
    requests = task.draft_requests()
    out = stage_dir(cfg, "inputs", cache.inputs_key(cfg, requests))
    with stage_lock(out):
        if not is_done(out):
            _draft_inputs(cfg, task, requests, out, llm)
    return out


def task_needs_model(task) -> bool:
    # `needs_model` is part of a task's optional "drafts" (tasks/base.py OPTIONAL_TASK_PARTS)
    return getattr(task, "needs_model", False)


def load_task(cfg: DictConfig, llm=None):
    """The task, with the inputs the base model helped write (the inputs stage runs first if needed)."""
    task = instantiate(cfg.task)
    if not task_needs_model(task):
        return task
    out = run(cfg, llm)
    task.use_drafts({r["id"]: r["text"] for r in read_jsonl(out / "drafts.jsonl")})
    return task


def _draft_inputs(cfg: DictConfig, task, requests, out: Path, llm) -> None:
    llm = llm or instantiate(cfg.backend)
    # The drafts are data (the inputs' wrong answers): seeded by data_seed and the item, never the sampling seed.
    draft = Sampling(n=1, temperature=0.0, max_new_tokens=24, seed=int(cfg.data_seed))
    comps = llm.generate([p for _, p in requests], draft, desc="draft inputs",
                         seeds=[request_seed(draft.seed, qid, "draft") for qid, _ in requests])
    rewrite_jsonl(out / "drafts.jsonl", [{"id": qid, "prompt": render_prompt(p), "text": c[0].text,
                                          "completion_tokens": c[0].completion_tokens}
                                         for (qid, p), c in zip(requests, comps)])
    task.use_drafts({r["id"]: r["text"] for r in read_jsonl(out / "drafts.jsonl")})
    # draft_stats: part of the task's optional "drafts" (tasks/base.py OPTIONAL_TASK_PARTS)
    info = mark_done(out, {"stage": "inputs", "task": task.name, **getattr(task, "draft_stats", {}),
                           "config": resolved(cfg)})
    log.info("inputs: %s", {k: v for k, v in info.items() if k.startswith("drafts")})
