"""Stage 4: accuracy and generated tokens per input on the labeled eval split, for each system."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_json, read_jsonl, require_done, rewrite_jsonl
from s2d.methods.system1 import System1
from s2d.artifacts import stage_lock
from s2d.config import sampling
from s2d.stages import resolved, stage_dir
from s2d.stages.chunks import run_in_chunks
from s2d.stages.inputs import load_task
from s2d.scoring import changes, score
from s2d.tasks.grading import grader_version, regrade
from s2d.types import Trace

log = logging.getLogger(__name__)


def run(cfg: DictConfig, train_dir: Path, llm=None) -> dict[str, Path]:
    """One stage directory per system; returns {system: directory} for the systems that could run. The routed
    system is built on distilled and System 2 by s2d/stages/route.py (`route.run`, after this), not here.

    `llm`: the base model's backend, if the caller already has one (it loads the model on first use).
    """
    train_info = require_done(train_dir)
    # The base backend loads its model only when called, so creating it here costs nothing.
    base = llm or instantiate(cfg.backend)
    task = load_task(cfg, base)
    samp = sampling(cfg.eval, cfg.seed)
    dirs = {}
    for system in cfg.eval.systems:
        if system in ("distilled", "routed") and not train_info.get("trained"):
            log.warning("evaluate: no distilled model (nothing passed the filter); skipping '%s'", system)
            continue
        if system != "routed":
            dirs[system] = system_dir(cfg, system, task, base, train_dir, samp)
    return dirs


def system_key(cfg: DictConfig, system: str, train: str) -> str:
    """The evaluate key of one system. System 1, System 2 and distilled leave out eval.route and the routed
    entry of eval.systems, which cannot change their records, so adding `routed` to a run reuses them (routed's
    own key: `route.system_key`)."""
    if system == "routed":
        raise ValueError("the routed system's key is s2d.stages.route.system_key(cfg, train), built on these")
    plain = OmegaConf.create(resolved(cfg))  # untyped, so eval.route can go
    del plain.eval["route"]
    plain.eval.systems = [s for s in cfg.eval.systems if s != "routed"]
    return cache.evaluate_key(plain, system, train)


def system_dir(cfg: DictConfig, system: str, task, base, train_dir: Path, samp) -> Path:
    """One system's finished evaluate directory: reused (re-scored if its grader is older) or computed."""
    out = stage_dir(cfg, "evaluate", system_key(cfg, system, train_dir.name))
    if is_done(out):
        if read_json(out / "DONE.json").get("grader_version") != grader_version(task):
            # The grader changed since these answers were scored: score the stored replies again.
            with stage_lock(out):
                if read_json(out / "DONE.json").get("grader_version") != grader_version(task):
                    rescore(out, task, system)
        log.info("evaluate %s: reusing %s", system, out)
        return out
    with stage_lock(out):
        if not is_done(out):
            _evaluate(cfg, system, out, task, base, train_dir, samp)
    return out


def distilled_backend(cfg: DictConfig, train_dir: Path):
    """The configured backend, on the distilled model in `train_dir/model` instead of the configured model.

    The backend's `model` node is replaced, not merged: merged into a model config of another kind (the
    organism's), its `_target_` and keys would survive and build the wrong source.
    """
    node = OmegaConf.to_container(cfg.backend, resolve=True)
    node["model"] = {"_target_": "s2d.llm.model.ModelSource", "name": "distilled",
                     "name_or_path": str(train_dir / "model")}
    return instantiate(node)


def _evaluate(cfg: DictConfig, system: str, out: Path, task, base, train_dir: Path, samp) -> None:
    """Greedy (or k-sample) answers of one system on the eval split, scored, into `out`."""
    if system == "distilled":
        # One engine at a time: the base model's (a vLLM engine holds its GPU share until released) goes first.
        base.release()
        llm = distilled_backend(cfg, train_dir)
        # Zero-shot, like the (System 1 prompt → target) pairs it was trained on.
        method = System1()
    else:
        llm = base
        method = instantiate(cfg.system1) if system == "system1" else instantiate(cfg.method)
    examples = task.eval_examples()
    try:
        traces, _ = run_in_chunks(out / "traces.jsonl", examples, samp, cfg.eval.chunk_size,
                                  lambda chunk, s: method.run(chunk, task, llm, s))
    finally:
        if llm is not base:
            llm.release()  # the base model may need the GPU again (a later system, the next cell)
    rows, metrics = score(examples, traces, task, system)
    rewrite_jsonl(out / "predictions.jsonl", rows)
    mark_done(out, {"stage": "evaluate", "system": system, "method": method.name, **metrics,
                    "grader_version": grader_version(task), "config": resolved(cfg)})
    log.info("evaluate %s: accuracy %.3f, %.1f tokens per input", system, metrics[f"{system}/accuracy"],
             metrics[f"{system}/tokens_per_input"])


def rescore(out: Path, task, system: str) -> dict:
    """Score a finished evaluate directory again with the task's current grader, from its stored traces.

    Rewrites predictions.jsonl and the figures in DONE.json; traces.jsonl is read, never written, and no
    model is called. Returns what changed: answers changed, accuracy before and after, grader versions.
    The routed system's directory is re-scored by `route.rescore`.
    """
    if system == "routed":
        raise ValueError(f"{out} holds the routed system: re-score it with s2d.stages.route.rescore(out, task)")
    info = require_done(out)
    examples = task.eval_examples()
    traces = regrade([Trace.from_dict(r) for r in read_jsonl(out / "traces.jsonl")], task)
    stored = read_jsonl(out / "predictions.jsonl")
    rows, metrics = score(examples, traces, task, system)
    changed, flipped = changes(stored, rows)
    rewrite_jsonl(out / "predictions.jsonl", rows)
    # Figures are the "/" keys; stale ones (a group or interval the new scoring no longer has) are dropped.
    kept = {k: v for k, v in info.items() if "/" not in k and k not in ("versions", "git_sha", "grader_version")}
    mark_done(out, {**kept, **metrics, "grader_version": grader_version(task),
                    "rescored": {"from_grader_version": info.get("grader_version"), "answers_changed": changed,
                                 "verdicts_changed": flipped}})
    summary = {"system": system, "n": len(rows), "answers_changed": changed, "verdicts_changed": flipped,
               "accuracy_before": info.get(f"{system}/accuracy"), "accuracy_after": metrics[f"{system}/accuracy"],
               "grader_version_before": info.get("grader_version"), "grader_version_after": grader_version(task)}
    log.info("evaluate %s: re-scored %s with grader version %s: %d answers and %d verdicts changed, "
             "accuracy %s -> %.3f", system, out, summary["grader_version_after"], changed, flipped,
             summary["accuracy_before"],
             summary["accuracy_after"])
    return summary
