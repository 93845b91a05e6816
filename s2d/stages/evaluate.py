"""Stage 4: accuracy and generated tokens per input on the labeled eval split, for each system."""

from __future__ import annotations

import logging
from collections import defaultdict
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
from s2d.stats import wilson
from s2d.tasks.base import extra_metrics
from s2d.tasks.grading import grader_version, regrade, was_cut  # noqa: F401  (the routed stage reads them here)
from s2d.types import Example, Trace
from s2d.voting import majority

log = logging.getLogger(__name__)


def score(examples: list[Example], traces: list[Trace], task, system: str) -> tuple[list[dict], dict]:
    """Per-example predictions and the system's figures.

    An input's prediction is the majority answer of its k samples (k = 1: its only sample) and its
    tokens are summed over all k samples (the paper's #Tokens); no parsable answer is a wrong answer.
    """
    by_example: dict[str, list[Trace]] = defaultdict(list)
    for t in traces:
        by_example[t.example_id].append(t)
    rows = []
    for ex in examples:
        ts = sorted(by_example[ex.id], key=lambda t: t.sample)
        answer = majority([t.answer for t in ts])
        rows.append({
            "example_id": ex.id, "input": ex.input, "output": ts[0].final_text, "answer": answer,
            "votes": [t.answer for t in ts], "gold": ex.gold, "correct": task.score(answer, ex),
            "tokens": sum(t.completion_tokens for t in ts), "calls": sum(len(t.calls) for t in ts),
            "call_tokens": [[c.completion_tokens for c in t.calls] for t in ts],
            "fallbacks": sum(bool(t.meta.get("fallback")) for t in ts),
            "truncated": sum(c.truncated for t in ts for c in t.calls),  # calls that hit max_new_tokens
            "group": ex.meta.get("group"),
        })
    metrics = _figures(rows, system)
    metrics[f"{system}/parse_failures"] = sum(r["answer"] is None for r in rows)
    metrics[f"{system}/fallbacks"] = sum(r["fallbacks"] for r in rows)
    # Share of all calls of all samples that stopped at eval.max_new_tokens (no EOS, no stop string).
    metrics[f"{system}/truncated"] = sum(r["truncated"] for r in rows) / max(1, sum(r["calls"] for r in rows))
    # Tasks that tag inputs with a group (e.g. biased / unbiased) get the same figures per group.
    for group in sorted({r["group"] for r in rows if r["group"]}):
        metrics.update(_figures([r for r in rows if r["group"] == group], system, f"_{group}"))
    # Tasks whose figures span several inputs (judging a pair in both orders) add them here: an optional
    # task part (tasks/base.py ExtraMetrics).
    extra = extra_metrics(task, examples, {r["example_id"]: r["answer"] for r in rows}, system)
    if extra:
        metrics.update(extra)
        metrics.update(_agreement_intervals(extra, system))
    return rows, metrics


def _figures(rows: list[dict], system: str, suffix: str = "") -> dict:
    """Accuracy with its n and Wilson 95% interval, and tokens per input, over `rows`."""
    n, k = len(rows), sum(bool(r["correct"]) for r in rows)
    low, high = wilson(k, n)
    return {
        f"{system}/accuracy{suffix}": k / max(1, n),
        f"{system}/accuracy{suffix}_ci_low": low,
        f"{system}/accuracy{suffix}_ci_high": high,
        f"{system}/tokens_per_input{suffix}": sum(r["tokens"] for r in rows) / max(1, n),
        f"{system}/n{suffix}": n,
    }


def _agreement_intervals(extra: dict, system: str) -> dict:
    """Wilson 95% interval of each `<system>/agreement<suffix>`; agreement counts a pair's two orders, so
    its n is twice `<system>/pairs<suffix>` and its count of agreeing verdicts is agreement × n."""
    out = {}
    head = f"{system}/agreement"
    for key, value in extra.items():
        suffix = key[len(head):] if key.startswith(head) else None
        pairs = extra.get(f"{system}/pairs{suffix}")
        if suffix is None or pairs is None:
            continue
        n = 2 * pairs
        low, high = wilson(round(value * n), n)
        out[f"{head}{suffix}_ci_low"], out[f"{head}{suffix}_ci_high"] = low, high
        out[f"{head}{suffix}_n"] = n
    return out


def run(cfg: DictConfig, train_dir: Path, llm=None) -> dict[str, Path]:
    """One stage directory per system; returns {system: directory} for the systems that could run.

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
        dirs[system] = _system_dir(cfg, system, task, base, train_dir, samp)
    return dirs


def system_key(cfg: DictConfig, system: str, train: str) -> str:
    """The evaluate key of one system. System 1, System 2 and distilled leave out eval.route and the routed
    entry of eval.systems, which cannot change their records, so adding `routed` to a run reuses them."""
    plain = OmegaConf.create(resolved(cfg))  # untyped, so eval.route can go
    del plain.eval["route"]
    plain.eval.systems = [s for s in cfg.eval.systems if s != "routed"]
    if system != "routed":
        return cache.evaluate_key(plain, system, train)
    from s2d.stages import route

    return route.key(cfg, cache.evaluate_key(plain, "distilled", train), cache.evaluate_key(plain, "system2", train))


def _system_dir(cfg: DictConfig, system: str, task, base, train_dir: Path, samp) -> Path:
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
    # Routed reads System 2's answers: its directory first (outside routed's lock; it takes its own).
    system2_dir = _system_dir(cfg, "system2", task, base, train_dir, samp) if system == "routed" else None
    with stage_lock(out):
        if not is_done(out):
            if system == "routed":
                from s2d.stages import route

                base.release()  # one engine at a time, as for distilled
                llm = distilled_backend(cfg, train_dir)
                try:
                    route.compute(cfg, out, task, system2_dir, llm, samp)
                finally:
                    llm.release()
            else:
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
    """
    if system == "routed":
        from s2d.stages import route

        return route.rescore(out, task)
    info = require_done(out)
    examples = task.eval_examples()
    traces = regrade([Trace.from_dict(r) for r in read_jsonl(out / "traces.jsonl")], task)
    before = {r["example_id"]: r["answer"] for r in read_jsonl(out / "predictions.jsonl")}
    rows, metrics = score(examples, traces, task, system)
    changed = sum(before.get(r["example_id"]) != r["answer"] for r in rows)
    rewrite_jsonl(out / "predictions.jsonl", rows)
    # Figures are the "/" keys; stale ones (a group or interval the new scoring no longer has) are dropped.
    kept = {k: v for k, v in info.items() if "/" not in k and k not in ("versions", "git_sha", "grader_version")}
    mark_done(out, {**kept, **metrics, "grader_version": grader_version(task),
                    "rescored": {"from_grader_version": info.get("grader_version"), "answers_changed": changed}})
    summary = {"system": system, "n": len(rows), "answers_changed": changed,
               "accuracy_before": info.get(f"{system}/accuracy"), "accuracy_after": metrics[f"{system}/accuracy"],
               "grader_version_before": info.get("grader_version"), "grader_version_after": grader_version(task)}
    log.info("evaluate %s: re-scored %s with grader version %s: %d answers changed, accuracy %s -> %.3f",
             system, out, summary["grader_version_after"], changed, summary["accuracy_before"],
             summary["accuracy_after"])
    return summary
