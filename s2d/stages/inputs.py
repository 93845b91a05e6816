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
from s2d.tasks.base import drafting
from s2d.types import DRAFT_MAX_NEW_TOKENS, Sampling, request_seed

log = logging.getLogger(__name__)


def run(cfg: DictConfig, llm=None) -> Path | None:
    """Stage 0: the inputs the base model helps write (a task's optional "drafts" part, e.g. TriviaQA's
    model-made wrong answers), once per model and task in `<cache>/inputs/<key>`; None when the task needs
    none. `llm` is the base model's backend; it is only called when the drafts are not cached yet.

    A task may ask in rounds (`draft_followups()`: requests that depend on the replies so far, e.g. a second
    phrasing asked only of the questions the first one got right). Each round is its own stage directory,
    keyed by the previous round's and its own requests, and holds every reply up to it; the last is returned."""
    task = instantiate(cfg.task)
    if not task_needs_model(task):
        return None
    requests, out = task.draft_requests(), None
    while requests:
        earlier = read_jsonl(out / "drafts.jsonl") if out else []
        out = stage_dir(cfg, "inputs", key(cfg, task, requests, after=out))
        with stage_lock(out):
            if not is_done(out):
                _draft_inputs(cfg, task, requests, out, llm, earlier)
        use_drafts(task, out)
        requests = followups(task)
    return out


def key(cfg: DictConfig, task, requests, after: Path | None = None) -> str:
    """The stage's cache key: the model, every request and its token cap where that is not the default; for a
    follow-up round, also the round before it (`after`, its stage directory)."""
    caps = {rid: cap for rid, _ in requests if (cap := draft_cap(task, rid)) != DRAFT_MAX_NEW_TOKENS}
    if after is not None:
        requests = [("after", after.name), *requests]
    return cache.inputs_key(cfg, requests, caps)


def followups(task) -> list:
    """The task's next round of requests (DraftsInputs.draft_followups); [] when done."""
    return task.draft_followups()


def task_needs_model(task) -> bool:
    return drafting(task) is not None  # the optional part tasks/base.py DraftsInputs


def load_task(cfg: DictConfig, llm=None):
    """The task, with the inputs the base model helped write (the inputs stage runs first if needed)."""
    task = instantiate(cfg.task)
    if not task_needs_model(task):
        return task
    out = run(cfg, llm)
    use_drafts(task, out)
    return task


def draft_cap(task, request_id: str) -> int:
    """A draft request's token cap: the task's own (DraftsInputs.draft_max_new_tokens)."""
    return task.draft_max_new_tokens(request_id)


def use_drafts(task, out: Path) -> None:
    rows = read_jsonl(out / "drafts.jsonl")  # rows written before `truncated` was recorded read as not truncated
    task.use_drafts({r["id"]: r["text"] for r in rows}, frozenset(r["id"] for r in rows if r.get("truncated")))


def _draft_inputs(cfg: DictConfig, task, requests, out: Path, llm, earlier: list[dict]) -> None:
    """One round: `requests` answered and written after the `earlier` rounds' rows, then handed to the task."""
    llm = llm or instantiate(cfg.backend)
    # The drafts are data (the inputs' wrong answers, the probe's replies): greedy, seeded by data_seed and the
    # item, never the sampling seed; one batch per token cap.
    replies = {}
    for cap in sorted({draft_cap(task, rid) for rid, _ in requests}):
        batch = [(rid, p) for rid, p in requests if draft_cap(task, rid) == cap]
        draft = Sampling(n=1, temperature=0.0, max_new_tokens=cap, seed=int(cfg.data_seed))
        comps = llm.generate([p for _, p in batch], draft, desc="draft inputs",
                             seeds=[request_seed(draft.seed, rid, "draft") for rid, _ in batch])
        replies.update({rid: c[0] for (rid, _), c in zip(batch, comps)})
    rewrite_jsonl(out / "drafts.jsonl", earlier + [
        {"id": rid, "prompt": render_prompt(p), "text": replies[rid].text,
         "completion_tokens": replies[rid].completion_tokens, "truncated": replies[rid].truncated}
        for rid, p in requests])
    try:
        use_drafts(task, out)
    finally:  # the replies are finished work: kept even where the task cannot use them as configured (too few
        # known questions for its splits); a rerun with smaller splits reuses them
        info = mark_done(out, {"stage": "inputs", "task": task.name, "round_requests": len(requests),
                               **task.draft_stats, **task.probe_stats,  # tasks/base.py DraftsInputs
                               "config": resolved(cfg)})
    log.info("inputs: %s", {k: v for k, v in info.items() if k.startswith(("drafts", "probe", "known"))})
