"""The pipeline's stages, each a plain function of the config that reads and writes stage directories."""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from s2d.artifacts import safe_child, is_done, mark_done, read_jsonl, rewrite_jsonl, write_jsonl
from s2d.llm.base import render_prompt
from s2d.types import Example, Sampling, Trace, request_seed

log = logging.getLogger(__name__)


@contextmanager
def stage_lock(out: Path):
    """Hold `out`'s lock while computing it: a second process that wants the same stage (a parallel cell
    of a sweep, the same command started twice) waits, then finds it done instead of writing the same
    records concurrently. POSIX record locks: released when the process ends, also on a kill, and they
    work on NFS. Not for nesting on one directory within a process (the inner release frees both)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("%s: another process is computing this stage; waiting for it", out)
            fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def process_rank() -> int:
    """This process's rank under a multi-process launcher (Lightning DDP's own children, torchrun, SLURM
    tasks); 0 for a plain run."""
    import os

    ranks = [os.environ.get(v) for v in ("RANK", "LOCAL_RANK", "NODE_RANK")]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        ranks.append(os.environ.get("SLURM_PROCID"))
    return max((int(r) for r in ranks if r and r.isdigit()), default=0)


def stage_dir(cfg: DictConfig, stage: str, key: str) -> Path:
    """`<paths.cache_dir>/<stage>/<key>`: the same content key always lands in the same directory."""
    d = safe_child(Path(cfg.paths.cache_dir), stage, key)
    d.mkdir(parents=True, exist_ok=True)
    return d


def sampling(node: DictConfig, seed: int) -> Sampling:
    """Sampling of `generate` (n samples per input) or `eval` (k samples per input)."""
    return Sampling(
        n=int(node.n if "n" in node else node.k),
        temperature=float(node.temperature),
        top_p=float(node.top_p),
        max_new_tokens=int(node.max_new_tokens),
        seed=int(seed),
        stop=tuple(node.get("stop") or ()),
    )


def load_task(cfg: DictConfig, llm=None):
    """The task, with any inputs the base model must help write (cached in `<cache>/inputs/<key>`).

    `llm` is the base model's backend; it is only called when those inputs are not cached yet.
    """
    from hydra.utils import instantiate

    from s2d import cache

    task = instantiate(cfg.task)
    if not getattr(task, "needs_model", False):
        return task
    out = stage_dir(cfg, "inputs", cache.inputs_key(cfg))
    with stage_lock(out):
        if not is_done(out):
            _draft_inputs(cfg, task, out, llm)
    task.use_drafts({r["id"]: r["text"] for r in read_jsonl(out / "drafts.jsonl")})
    return task


def _draft_inputs(cfg: DictConfig, task, out: Path, llm) -> None:
    from hydra.utils import instantiate

    requests = task.draft_requests()
    llm = llm or instantiate(cfg.backend)
    # The drafts are data (the inputs' wrong answers): seeded by data_seed and the item, never the sampling seed.
    draft = Sampling(n=1, temperature=0.0, max_new_tokens=24, seed=int(cfg.data_seed))
    comps = llm.generate([p for _, p in requests], draft, desc="draft inputs",
                         seeds=[request_seed(draft.seed, qid, "draft") for qid, _ in requests])
    rewrite_jsonl(out / "drafts.jsonl", [{"id": qid, "prompt": render_prompt(p), "text": c[0].text,
                                          "completion_tokens": c[0].completion_tokens}
                                         for (qid, p), c in zip(requests, comps)])
    task.use_drafts({r["id"]: r["text"] for r in read_jsonl(out / "drafts.jsonl")})
    info = mark_done(out, {"stage": "inputs", "task": task.name, **getattr(task, "draft_stats", {}),
                           "config": resolved(cfg)})
    log.info("inputs: %s", {k: v for k, v in info.items() if k.startswith("drafts")})


def resolved(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


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
