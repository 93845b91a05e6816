"""Stage directories on disk: JSONL records appended as produced, DONE.json written atomically at the end."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable


class UpstreamNotDone(RuntimeError):
    pass


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Replace a JSONL file in one rename, so a reader sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


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
    return (stage_dir / "DONE.json").exists()


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
