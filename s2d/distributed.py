"""Which process this is under a multi-process launcher (Lightning DDP, torchrun, SLURM tasks)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def process_rank() -> int:
    """This process's rank under a multi-process launcher (Lightning DDP's own children, torchrun, SLURM
    tasks); 0 for a plain run."""
    ranks = [os.environ.get(v) for v in ("RANK", "LOCAL_RANK", "NODE_RANK")]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        ranks.append(os.environ.get("SLURM_PROCID"))
    return max((int(r) for r in ranks if r and r.isdigit()), default=0)


# The lead process's sign of life for followers started beside it (SLURM tasks, torchrun), which wait hours for
# its generation and filtering: beats every LEAD_BEAT_S; a follower stops after LEAD_STALE_S without one.
LEAD_BEAT_S = 30.0
LEAD_STALE_S = 600.0


def launched_world_size() -> int:
    """How many processes a launcher started for this run at once (torchrun's WORLD_SIZE, SLURM's tasks); 1 for
    a plain run, and for Lightning's own launch, which starts the other processes only when training begins."""
    sizes = [os.environ.get("WORLD_SIZE")]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        sizes.append(os.environ.get("SLURM_NTASKS"))
    return max((int(s) for s in sizes if s and s.isdigit()), default=1)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a follower never reads half a word


class LeadHeartbeat:
    """Written by the lead process while it runs a cell: `alive` (rewritten every `every_s`), then `finished`
    or `failed` when it stops."""

    def __init__(self, path: Path, every_s: float = LEAD_BEAT_S):
        self.path, self.every_s = Path(path), every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="s2d-lead-heartbeat", daemon=True)

    def start(self) -> "LeadHeartbeat":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write(self.path, "alive")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            _write(self.path, "alive")

    def stop(self, ok: bool) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        _write(self.path, "finished" if ok else "failed")


def lead_gone(path: Path, since: float, stale_s: float = LEAD_STALE_S) -> str | None:
    """Why a follower that started waiting at `since` should stop waiting for the lead, or None while the lead
    lives. A mark left before `since` (an earlier attempt of the same cell) counts only as a missing beat."""
    try:
        mtime, text = path.stat().st_mtime, path.read_text().strip()
    except FileNotFoundError:
        mtime, text = 0.0, ""
    if mtime >= since and text == "failed":
        return f"the lead process (rank 0) failed ({path} says so)"
    quiet = time.time() - max(mtime, since)
    if quiet > stale_s:
        return f"no sign of life from the lead process (rank 0) for {quiet:.0f} s (its heartbeat file: {path})"
    return None
