"""Stage 1: run the System 2 method N times on every unlabeled train input and record every call."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_json, read_jsonl, rewrite_jsonl
from s2d.artifacts import stage_lock
from s2d.config import sampling
from s2d.stages import resolved, stage_dir
from s2d.stages.chunks import run_in_chunks
from s2d.stages.inputs import load_task
from s2d.tasks.base import SplitStats
from s2d.types import Example, Trace

log = logging.getLogger(__name__)


def truncated_share(traces: list[Trace]) -> float:
    """Share of the traces' calls that hit max_new_tokens; records written before the flag existed count as not."""
    calls = [c for t in traces for c in t.calls]
    return sum(c.truncated for c in calls) / max(1, len(calls))


def shard_spec(cfg: DictConfig) -> tuple[int, int | None]:
    """(generate.num_shards, generate.shard_id), checked."""
    shards, shard = int(cfg.generate.get("num_shards", 1)), cfg.generate.get("shard_id")
    if shards < 1 or (shard is not None and not 0 <= int(shard) < shards):
        raise ValueError(f"generate.num_shards={shards}, generate.shard_id={shard}: need num_shards >= 1 and "
                         f"0 <= shard_id < num_shards (or shard_id=null to merge the shards)")
    return shards, None if shard is None else int(shard)


def shard_dir(out: Path, shard: int, shards: int) -> Path:
    return out / "shards" / f"{shard}-of-{shards}"


def run(cfg: DictConfig, llm=None) -> Path:
    """`llm`: the base model's backend, if the caller already has one (it loads the model on first use).

    With `generate.num_shards` > 1, `generate.shard_id=i` runs only chunk i, i + S, i + 2S, … of the inputs
    into `<stage>/shards/i-of-S` (data parallel, e.g. a SLURM array) and returns that directory; a run with
    `shard_id=null` then joins the complete shards into the stage, records equal to an unsharded run's.
    """
    shards, shard = shard_spec(cfg)
    out = stage_dir(cfg, "generate", cache.generate_key(cfg))
    if is_done(out):
        log.info("generate: reusing %s", out)
        return out
    if shard is not None:
        d = shard_dir(out, shard, shards)
        with stage_lock(d):
            return _run_shard(cfg, out, shard, shards, llm)
    with stage_lock(out):
        if is_done(out):
            log.info("generate: reusing %s (computed meanwhile by another process)", out)
            return out
        return _generate(cfg, out, shards, llm)


def _generate(cfg: DictConfig, out: Path, shards: int, llm) -> Path:
    task = None
    if shards > 1:
        samp = sampling(cfg.generate, cfg.seed)
        traces, seconds, ran = _join_shards(out, shards, samp.n)
        examples = [Example(**r) for r in read_jsonl(out / "examples.jsonl")]
        method = instantiate(cfg.method if cfg.distill_from == "method" else cfg.system1)
    else:
        llm = llm or instantiate(cfg.backend)
        task = load_task(cfg, llm)
        # "Distill System 1" (paper ablation): the targets come from System 1's own samples.
        method = instantiate(cfg.method if cfg.distill_from == "method" else cfg.system1)
        examples = task.train_examples()
        samp = sampling(cfg.generate, cfg.seed)
        rewrite_jsonl(out / "examples.jsonl", [e.__dict__ for e in examples])
        t0 = time.time()
        traces, ran = run_in_chunks(out / "traces.jsonl", examples, samp, cfg.generate.chunk_size,
                                    lambda chunk, s: method.run(chunk, task, llm, s))
        seconds = time.time() - t0
    tokens = sum(t.completion_tokens for t in traces)
    info = mark_done(out, {
        "stage": "generate", "method": method.name, "task": instantiate(cfg.task).name if task is None else task.name,
        "inputs": len(examples), "shards": shards,
        "traces": len(traces), "samples_per_input": samp.n, "completion_tokens": tokens,
        "fallbacks": sum(bool(t.meta.get("fallback")) for t in traces),
        # Share of all calls of all samples that stopped at generate.max_new_tokens (no EOS, no stop string).
        "truncated": truncated_share(traces),
        "split": task.split_stats() if isinstance(task, SplitStats) else None,  # an optional task part
        "tokens_per_input": tokens / max(1, len(examples)), "seconds": seconds,
        "tokens_per_second": tokens / max(seconds, 1e-9) if ran else None, "config": resolved(cfg),
    })
    log.info("generate: %d traces, %d tokens in %.1fs", len(traces), tokens, seconds)
    return out


def _run_shard(cfg: DictConfig, out: Path, shard: int, shards: int, llm) -> Path:
    d = shard_dir(out, shard, shards)
    if is_done(d):
        log.info("generate: shard %d of %d already done in %s", shard, shards, d)
        return d
    llm = llm or instantiate(cfg.backend)
    task = load_task(cfg, llm)
    method = instantiate(cfg.method if cfg.distill_from == "method" else cfg.system1)
    examples = task.train_examples()
    rewrite_jsonl(out / "examples.jsonl", [e.__dict__ for e in examples])  # the same file from every shard
    t0 = time.time()
    traces, ran = run_in_chunks(d / "traces.jsonl", examples, sampling(cfg.generate, cfg.seed),
                                cfg.generate.chunk_size, lambda chunk, s: method.run(chunk, task, llm, s),
                                only=lambda i: i % shards == shard)
    mark_done(d, {"stage": "generate-shard", "shard": shard, "shards": shards, "traces": len(traces),
                  "inputs": len({t.example_id for t in traces}), "chunks_run": ran, "seconds": time.time() - t0})
    log.info("generate: shard %d of %d: %d traces in %s", shard, shards, len(traces), d)
    return d


def _join_shards(out: Path, shards: int, n: int) -> tuple[list[Trace], float, int]:
    """All shards' traces in input order, once every shard is done; else an error naming the missing ones."""
    missing = [i for i in range(shards) if not is_done(shard_dir(out, i, shards))]
    if missing:
        raise RuntimeError(
            f"generate: {len(missing)} of {shards} shards are not done ({missing}); run each with the same "
            f"overrides plus generate.shard_id=<i> (e.g. a SLURM array), then run again with generate.shard_id=null")
    order = {r["id"]: k for k, r in enumerate(read_jsonl(out / "examples.jsonl"))}
    rows = [r for i in range(shards) for r in read_jsonl(shard_dir(out, i, shards) / "traces.jsonl")]
    traces = sorted((Trace.from_dict(r) for r in rows), key=lambda t: (order[t.example_id], t.sample))
    if {t.example_id for t in traces} != set(order) or len(traces) != n * len(order):
        raise RuntimeError(f"generate: the shards under {out / 'shards'} do not hold {n} samples of each input in "
                           f"{out / 'examples.jsonl'} (were they run with another generate.chunk_size?); remove {out / 'shards'} and run the shards again")
    rewrite_jsonl(out / "traces.jsonl", [t.to_dict() for t in traces])
    seconds = sum(read_json(shard_dir(out, i, shards) / "DONE.json")["seconds"] for i in range(shards))
    return traces, seconds, shards
