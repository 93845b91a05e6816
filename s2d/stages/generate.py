"""Stage 1: run the System 2 method N times on every unlabeled train input and record every call."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d.artifacts import is_done, mark_done, write_jsonl
from s2d.stages import sampling, stage_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig, llm=None) -> Path:
    out = stage_dir(cfg, "generate")
    if is_done(out):
        log.info("generate: reusing %s", out)
        return out
    task = instantiate(cfg.task)
    method = instantiate(cfg.method)
    llm = llm or instantiate(cfg.backend)
    examples = task.train_examples()
    samp = sampling(cfg.generate, cfg.seed)
    # An unfinished earlier attempt is redone whole (per-record resume is not implemented yet).
    for stale in ("examples.jsonl", "traces.jsonl"):
        (out / stale).unlink(missing_ok=True)
    write_jsonl(out / "examples.jsonl", [e.__dict__ for e in examples])
    t0 = time.time()
    traces = method.run(examples, task, llm, samp)
    seconds = time.time() - t0
    write_jsonl(out / "traces.jsonl", [t.to_dict() for t in traces])
    tokens = sum(t.completion_tokens for t in traces)
    info = mark_done(out, {
        "stage": "generate", "method": method.name, "task": task.name, "inputs": len(examples),
        "traces": len(traces), "samples_per_input": samp.n, "completion_tokens": tokens,
        "tokens_per_input": tokens / max(1, len(examples)), "seconds": seconds,
        "tokens_per_second": tokens / max(seconds, 1e-9),
    })
    log.info("generate: %d traces, %d tokens in %.1fs (%.1f tok/s)", len(traces), tokens, seconds,
             info["tokens_per_second"])
    return out
