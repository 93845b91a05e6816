"""Stage directories on disk: JSONL records appended as produced, DONE.json written atomically at the end."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterable


log = logging.getLogger(__name__)


class UpstreamNotDone(RuntimeError):
    pass


def safe_child(root: Path, *names: str) -> Path:
    """root/names…, refusing names that would leave root (separators, "..", absolute paths): artifact names
    built from config values can never write outside the run or cache directory."""
    path = Path(root)
    for name in names:
        name = str(name)
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError(f"refusing artifact name {name!r}: it must be a plain file or directory name")
        path = path / name
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"refusing to write {path}: outside {root}")
    return path


@contextmanager
def replaced_atomically(path: Path):
    """A text file to write that replaces `path` in one rename when the block ends, so a reader (another
    process, a follower polling) sees the old file or the new one, never a part. A block that raises leaves
    `path` as it was and removes its temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    with replaced_atomically(path) as f:
        json.dump(obj, f, indent=2, default=str)


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_json_or_none(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable (a damaged file is logged, not fatal)."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%s); ignoring it", path, e)
        return None


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Replace a JSONL file in one rename, so a reader sees the old file or the new one, never a mix."""
    with replaced_atomically(path) as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Complete lines only: a line cut short by a kill is ignored."""
    rows = []
    if not path.exists():
        return rows
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                rows.append(json.loads(line))
    return rows


def is_done(stage_dir: Path) -> bool:
    """A finished stage has a readable DONE.json. A damaged one (disk full, edited by hand) is moved aside to
    DONE.json.corrupt and the stage counts as unfinished, so it is recomputed (resuming from its records)."""
    path = stage_dir / "DONE.json"
    if not path.exists():
        return False
    info = read_json_or_none(path)
    if isinstance(info, dict):
        return True
    os.replace(path, stage_dir / "DONE.json.corrupt")
    log.warning("%s: DONE.json was damaged; moved to DONE.json.corrupt, recomputing the stage", stage_dir)
    return False


def require_done(stage_dir: Path) -> dict:
    if not is_done(stage_dir):
        raise UpstreamNotDone(f"{stage_dir} has no DONE.json: that stage did not finish; rerun it first")
    return read_json(stage_dir / "DONE.json")


def mark_done(stage_dir: Path, info: dict) -> dict:
    info = {**info, "versions": versions(), "git_sha": git_sha()}
    write_json(stage_dir / "DONE.json", info)
    return info


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("s2d", "torch", "transformers", "pytorch-lightning", "hydra-core"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces (data files, GGUF weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
