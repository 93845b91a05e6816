"""Chunked, resumable records: a stage appends finished chunks of records, and a killed run redoes at most
its unfinished chunk."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from s2d.artifacts import read_jsonl, rewrite_jsonl, write_jsonl
from s2d.types import Example, Sampling, Trace

log = logging.getLogger(__name__)


def run_in_chunks(
    path: Path,
    examples: Sequence[Example],
    samp: Sampling,
    chunk_size: int,
    fn: Callable[[Sequence[Example], Sampling], list[Trace]],
    only: Callable[[int], bool] | None = None,
) -> tuple[list[Trace], int]:
    """Run `fn` over fixed chunks of examples, appending each finished chunk's traces to `path`.

    Chunks already complete on disk are skipped, and a chunk cut short by a kill is dropped and
    redone, so a resumed run writes exactly the records of an uninterrupted one. Every sample's seed
    derives from (seed, example, call stage, sample) inside the method, so a chunk's records do not
    depend on the chunk size, on which chunks ran before it, nor on which process ran it: `only(i)`
    restricts the work to some chunks (a shard), whose records equal the unsharded run's.
    Returns (traces, chunks run).
    """
    chunks = [list(examples[i : i + chunk_size]) for i in range(0, len(examples), chunk_size)]
    if only is not None:
        chunks = [c if only(i) else [] for i, c in enumerate(chunks)]
    rows = read_jsonl(path)
    per_example = Counter(r["example_id"] for r in rows)
    complete = {i for i, c in enumerate(chunks) if all(per_example[e.id] == samp.n for e in c)}
    keep_ids = {e.id for i in complete for e in chunks[i]}
    kept = [r for r in rows if r["example_id"] in keep_ids]
    if len(kept) != len(rows) or (path.exists() and not rows):
        log.info("%s: dropping %d records of unfinished chunks", path, len(rows) - len(kept))
        rewrite_jsonl(path, kept)
    if complete:
        log.info("%s: resuming, %d of %d chunks already done", path.parent.name, len(complete), len(chunks))
    ran = 0
    for i, chunk in enumerate(chunks):
        if i in complete:
            continue
        traces = fn(chunk, samp)
        write_jsonl(path, [t.to_dict() for t in traces])
        ran += 1
    order = {e.id: k for k, e in enumerate(examples)}
    traces = sorted((Trace.from_dict(r) for r in read_jsonl(path)), key=lambda t: (order[t.example_id], t.sample))
    return traces, ran
