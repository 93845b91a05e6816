"""Stage 1: run the System 2 method N times on every unlabeled train input and record every call."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, rewrite_jsonl
from s2d.stages import load_task, resolved, run_in_chunks, sampling, stage_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig, llm=None) -> Path:
    """`llm`: the base model's backend, if the caller already has one (it loads the model on first use)."""
    out = stage_dir(cfg, "generate", cache.generate_key(cfg))
    if is_done(out):
        log.info("generate: reusing %s", out)
        return out
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
        "stage": "generate", "method": method.name, "task": task.name, "inputs": len(examples),
        "traces": len(traces), "samples_per_input": samp.n, "completion_tokens": tokens,
        "fallbacks": sum(bool(t.meta.get("fallback")) for t in traces),
        "tokens_per_input": tokens / max(1, len(examples)), "seconds": seconds,
        "tokens_per_second": tokens / max(seconds, 1e-9) if ran else None, "config": resolved(cfg),
    })
    log.info("generate: %d traces, %d tokens in %.1fs", len(traces), tokens, seconds)
    return out
