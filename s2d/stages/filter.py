"""Stage 2: curate the System 2 outputs into (System 1 prompt, target) pairs; intermediate tokens are dropped."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d.config import TARGETS
from s2d import cache
from s2d.artifacts import safe_child, is_done, mark_done, read_jsonl, require_done, rewrite_jsonl
from s2d.artifacts import stage_lock
from s2d.stages import resolved, stage_dir
from s2d.tasks.grading import regrade
from s2d.filters.base import Filter, FilterResult
from s2d.types import Example, Trace

log = logging.getLogger(__name__)


def choose(examples: list[Example], traces: list[Trace], flt: Filter, task, llm=None) -> FilterResult:
    """The filter's picks {example id: chosen trace or None}, its own figures and the model calls it made.
    Filters that consult the model (USC) get `llm`."""
    by_example: dict[str, list[Trace]] = defaultdict(list)
    for t in traces:
        by_example[t.example_id].append(t)
    if flt.needs_model and llm is None:
        raise ValueError(f"filter '{flt.name}' calls the model, but no backend was given")
    return flt.curate(examples, by_example, task, llm if flt.needs_model else None)


def build_targets(examples: list[Example], traces: list[Trace], flt: Filter, task, target: str,
                  llm=None) -> tuple[list[dict], dict, list[dict]]:
    """One row per kept input, the filter's figures (yield and, where gold exists, label precision), and
    the model calls the filter made."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got '{target}'")
    result = choose(examples, traces, flt, task, llm)
    picks = result.picks
    rows, unparsed = [], 0
    for ex in examples:
        chosen = picks.get(ex.id)
        if chosen is None:
            continue
        if target == "answer" and chosen.answer is None:
            unparsed += 1
            continue
        text = task.format_answer(chosen.answer) if target == "answer" else chosen.final_text
        rows.append({
            "example_id": ex.id, "prompt": task.prompt(ex), "target": text, "answer": chosen.answer,
            # Gold is kept for analysis only (label precision); it never shapes the target.
            "gold": ex.gold, "correct": task.score(chosen.answer, ex) if ex.gold is not None else None,
            "filter_calls": [c.__dict__ for c in chosen.calls] if chosen.sample < 0 else [],
        })
    graded = [r for r in rows if r["correct"] is not None]
    stats = {
        "filter/seen": len(examples),
        "filter/kept": len(rows),
        "filter/yield": len(rows) / max(1, len(examples)),
        "filter/unparsed_selected": unparsed,
        "filter/parse_failures": sum(t.answer is None for t in traces),
        **result.stats,
    }
    if graded:
        stats["filter/label_precision"] = sum(r["correct"] for r in graded) / len(graded)
    return rows, stats, result.calls


def run(cfg: DictConfig, generate_dir: Path, llm=None) -> Path:
    """`llm`: the base model's backend, for filters that call the model (it loads on first use)."""
    require_done(generate_dir)
    out = stage_dir(cfg, "filter", cache.filter_key(cfg, generate_dir.name))
    if is_done(out):
        log.info("filter: reusing %s", out)
        return out
    with stage_lock(out):
        if not is_done(out):
            _filter(cfg, generate_dir, out, llm)
    return out


def _filter(cfg: DictConfig, generate_dir: Path, out: Path, llm) -> None:
    task = instantiate(cfg.task)
    flt = instantiate(cfg.filter)
    if flt.needs_model and llm is None:
        llm = instantiate(cfg.backend)
    examples = [Example(**r) for r in read_jsonl(generate_dir / "examples.jsonl")]
    # Answers are read again with the current grader: a grader change redoes the filter, not generation.
    traces = regrade([Trace.from_dict(r) for r in read_jsonl(generate_dir / "traces.jsonl")], task)
    rows, stats, calls = build_targets(examples, traces, flt, task, cfg.target, llm)
    rewrite_jsonl(out / "targets.jsonl", rows)
    if calls:  # every call a model-consulting filter made, parsed or not
        rewrite_jsonl(safe_child(out, f"{flt.name}_calls.jsonl"), calls)
    mark_done(out, {"stage": "filter", "filter": flt.name, "target": cfg.target, **stats, "config": resolved(cfg)})
    log.info("filter %s: kept %d of %d inputs (yield %.2f)", flt.name, stats["filter/kept"],
             stats["filter/seen"], stats["filter/yield"])
