"""Experiment tracking: W&B (online with a key, offline without, or disabled) behind one small interface."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """Where a run's figures go besides metrics.json (W&B, or nowhere: `logger=none`). `start` opens the run,
    `finish(exit_code)` always closes it, also after a failure; in between the stages log to it."""

    run_id: str | None

    def start(self, config: dict, run_dir: Path, job_type: str = "distill", tags: Sequence[str] = (),
              group: str | None = None, run_id: str | None = None) -> None: ...

    def lightning_logger(self): ...

    def log(self, metrics: dict[str, Any]) -> None: ...

    def summary(self, metrics: dict[str, Any]) -> None: ...

    def table(self, key: str, rows: list[dict]) -> None: ...

    def scatter(self, key: str, rows: list[dict], x: str, y: str, title: str) -> None: ...

    def line(self, key: str, rows: list[dict], x: str, y: str, title: str, stroke: str | None = None) -> None: ...

    def image(self, key: str, path: Path) -> None: ...

    def finish(self, exit_code: int = 0) -> None: ...


def wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """'auto' → online only when a key is configured, so a run never stops to ask for one."""
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"logger.mode must be one of auto, online, offline, disabled; got '{mode}'")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env if env != "online" or wandb_key_configured() else "offline"
    return "online" if wandb_key_configured() else "offline"


def _wandb_table(rows: list[dict]):
    """A W&B table of flat records; lists (votes, per-call tokens) become JSON text, None stays missing."""
    import json

    import wandb

    cols = list(rows[0])
    data = [[json.dumps(r.get(c)) if isinstance(r.get(c), (list, dict)) else r.get(c) for c in cols] for r in rows]
    return wandb.Table(columns=cols, data=data, allow_mixed_types=True)


class WandbTracker:
    def __init__(self, project: str = "s2d", entity: str | None = None, mode: str = "auto",
                 group: str | None = None, tags: Sequence[str] = (), name: str | None = None):
        self.project = project
        self.entity = entity
        self.mode = resolve_mode(mode)
        self.group = group
        self.tags = [str(t) for t in tags if t]
        self.name = name
        self.run = None

    def start(self, config: dict, run_dir: Path, job_type: str = "distill", tags: Sequence[str] = (),
              group: str | None = None, run_id: str | None = None) -> None:
        """`group` applies when logger.group is unset (a sweep groups its own cells); `run_id` continues
        that W&B run (a killed run started again)."""
        import wandb

        # silent: no W&B banners (version, offline notice, run summary) around s2d's table. What they told is in
        # the line below (which reaches the run's log file too); the run's own logs stay in <run dir>/wandb.
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, group=self.group or group,
                              tags=[*self.tags, *tags], name=self.name, job_type=job_type, config=config,
                              dir=str(run_dir), id=run_id, resume="allow" if run_id else None,
                              settings=wandb.Settings(silent=True))
        if self.mode == "offline":
            log.info("W&B run %s (offline) in %s; upload it with: wandb sync %s", self.run.id, run_dir / "wandb",
                     self.run.settings.sync_dir)
        else:
            log.info("W&B run %s (%s) in %s %s", self.run.id, self.mode, run_dir / "wandb", self.run.url or "")

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def lightning_logger(self):
        from pytorch_lightning.loggers import WandbLogger

        return WandbLogger(experiment=self.run) if self.run is not None else False

    def log(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(metrics)

    def summary(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(metrics)

    def table(self, key: str, rows: list[dict]) -> None:
        if self.run is not None and rows:
            self.run.log({key: _wandb_table(rows)})

    def scatter(self, key: str, rows: list[dict], x: str, y: str, title: str) -> None:
        if self.run is not None and rows:
            import wandb

            self.run.log({key: wandb.plot.scatter(_wandb_table(rows), x, y, title=title)})

    def line(self, key: str, rows: list[dict], x: str, y: str, title: str, stroke: str | None = None) -> None:
        """A line chart of `rows` (one line per value of the `stroke` column), e.g. the routing frontier."""
        if self.run is not None and rows:
            import wandb

            self.run.log({key: wandb.plot.line(_wandb_table(rows), x, y, stroke=stroke, title=title)})

    def image(self, key: str, path: Path) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


class NoTracker:
    """logger=none: nothing leaves the run directory."""

    run_id = None

    def start(self, config: dict, run_dir: Path, job_type: str = "distill", tags: Sequence[str] = (),
              group: str | None = None, run_id: str | None = None) -> None:
        pass

    def lightning_logger(self):
        return False

    def log(self, metrics: dict[str, Any]) -> None:
        pass

    def summary(self, metrics: dict[str, Any]) -> None:
        pass

    def table(self, key: str, rows: list[dict]) -> None:
        pass

    def scatter(self, key: str, rows: list[dict], x: str, y: str, title: str) -> None:
        pass

    def line(self, key: str, rows: list[dict], x: str, y: str, title: str, stroke: str | None = None) -> None:
        pass

    def image(self, key: str, path: Path) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass
