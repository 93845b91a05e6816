"""Which process this is under a multi-process launcher (Lightning DDP, torchrun, SLURM tasks)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path


def _launcher_value(names: tuple[str, ...], slurm_name: str, default: int) -> int:
    """The largest integer the launchers' variables `names` hold, with SLURM's `slurm_name` counted when SLURM
    started several tasks (a single-task job's SLURM variables say nothing of data parallelism)."""
    values = [os.environ.get(v) for v in names]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        values.append(os.environ.get(slurm_name))
    return max((int(v) for v in values if v and v.isdigit()), default=default)


def process_rank() -> int:
    """This process's rank under a multi-process launcher (Lightning DDP's own children, torchrun, SLURM
    tasks); 0 for a plain run."""
    return _launcher_value(("RANK", "LOCAL_RANK", "NODE_RANK"), "SLURM_PROCID", default=0)


# The lead process's sign of life for followers started beside it (SLURM tasks, torchrun), which wait hours for
# its generation and filtering: it beats every LEAD_BEAT_S; a follower stops after LEAD_STALE_S without one.
LEAD_BEAT_S = 30.0
LEAD_STALE_S = 600.0

log = logging.getLogger(__name__)


def launched_world_size() -> int:
    """How many processes a launcher started for this run at once (torchrun's WORLD_SIZE, SLURM's tasks); 1 for
    a plain run, and for Lightning's own launch, which starts the other processes only when training begins."""
    return _launcher_value(("WORLD_SIZE",), "SLURM_NTASKS", default=1)


def launch_attempt() -> str:
    """Which start of this job this is, the same in every process of it: SLURM's job id and requeue count,
    or torchrun's run id and restart count."""
    parts = [os.environ.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "TORCHELASTIC_RUN_ID",
                                              "TORCHELASTIC_RESTART_COUNT")]
    return ".".join(p or "-" for p in parts)


class LeadHeartbeat:
    """Written by the lead process while it runs a cell: `alive <attempt> <n>` with n counting up every
    `every_s`, then `failed` or `finished`. Followers judge by the content changing on their own clock, never by
    file times (a shared file system's clock need not agree with theirs). A write that fails (a passing file
    system error) is logged and the next beat tries again; it never stops the run."""

    def __init__(self, path: Path, every_s: float = LEAD_BEAT_S, attempt: str | None = None):
        self.path, self.every_s = Path(path), every_s
        self.attempt = launch_attempt() if attempt is None else attempt
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="s2d-lead-heartbeat", daemon=True)

    def _write(self, state: str) -> None:
        with self._lock:
            self._count += 1
            tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(f"{state} {self.attempt} {self._count}")
                os.replace(tmp, self.path)  # a follower never reads half a line
            except OSError as e:
                log.warning("lead heartbeat: could not write %s (%s); the next beat tries again", self.path, e)
                with contextlib.suppress(OSError):  # the temporary file, if the failure left one
                    tmp.unlink()

    def start(self) -> "LeadHeartbeat":
        self._write("alive")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self._write("alive")

    def stop(self, ok: bool) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._write("finished" if ok else "failed")


class LeadWatch:
    """A follower's view of the lead's heartbeat file: `gone()` says why to stop waiting, or None while the
    lead lives. Content left by an earlier attempt of the job counts as no beat until it changes."""

    def __init__(self, path: Path, stale_s: float = LEAD_STALE_S, attempt: str | None = None):
        self.path, self.stale_s = Path(path), stale_s
        self.attempt = launch_attempt() if attempt is None else attempt
        self._last = self._read()
        self._changed = time.monotonic()

    def _read(self) -> str | None:
        try:
            return self.path.read_text().strip()
        except OSError:  # missing, or a passing file system error: no news this time
            return None

    def gone(self) -> str | None:
        text = self._read()
        if text is not None and text != self._last:
            self._last, self._changed = text, time.monotonic()
            state, _, rest = text.partition(" ")
            if state == "failed" and rest.rsplit(" ", 1)[0] == self.attempt:
                return f"the lead process (rank 0) failed ({self.path} says so)"
        quiet = time.monotonic() - self._changed
        if quiet > self.stale_s:
            return f"no sign of life from the lead process (rank 0) for {quiet:.0f} s (its heartbeat file: {self.path})"
        return None
