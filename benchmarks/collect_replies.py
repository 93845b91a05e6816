"""Gather the replies s2d's own runs wrote into one file for hand-labelling (`python -m s2d.agreement` reads it).

    python benchmarks/collect_replies.py MANIFEST OUTDIR

MANIFEST is a JSON Lines file with one finished run per line: {"name": a short name, "dir": run or sweep
directory, "command": the command that made it}. Every run directory under "dir" (one holding run.json) is read: its generate stage's
sampled System 2 replies on the unlabeled train inputs (whose gold the synthetic tasks know) and each evaluate
stage's greedy replies on the eval split. A stage shared by several runs (System 1 across a sweep's methods) is
read once. Each reply becomes one line of OUTDIR/replies.jsonl: what was asked (short), the gold, the reply as
the model wrote it, whether it stopped at the token cap, the example's meta that the task's `score` reads
(TriviaQA's aliases and suggested wrong answer) and `source`, the name of its command in OUTDIR/sources.json,
which also names each task's class (whose `extract` and `score` grade it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from s2d.artifacts import read_json, read_jsonl, require_done
from s2d.rescore import task_of
from s2d.tasks.grading import was_cut
from s2d.types import Trace

QUESTION_CHARS = 160   # the question as stored: enough to label by, short enough to keep the file small
META_CHARS = 300       # meta strings longer than this (a judge pair's two replies) are left out of the stored example


def short(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def question_of(example, task_name: str) -> str:
    meta = example.meta or {}
    if "query" in meta:  # judge pairs: the user's query; the two replies are in the prompt, not stored
        return short(f"[judge {meta.get('order', '')}] {meta['query']}", QUESTION_CHARS)
    return short(example.input, QUESTION_CHARS)


def records(run_dir: Path, source: str, seen: set[str], targets: dict[str, str]) -> list[dict]:
    cell = read_json(run_dir / "run.json")
    out = []
    for stage, path in cell["stages"].items():
        d = Path(path).resolve()
        if not (stage == "generate" or stage.startswith("evaluate/")) or str(d) in seen:
            continue
        if stage == "evaluate/routed":
            continue  # its replies are the distilled model's and System 2's, read from their own stages
        seen.add(str(d))
        config = require_done(d)["config"]
        task = task_of(config)
        if stage == "generate":
            system, examples, decoding = "system2", task.train_examples(), "sampled"
        else:
            system, examples, decoding = stage.split("/", 1)[1], task.eval_examples(), "greedy"
        method = "system1" if system == "system1" else cell["method"]
        by_id = {e.id: e for e in examples}
        model = config["model"]["name"]
        targets[task.name] = config["task"]["_target_"]
        for row in read_jsonl(d / "traces.jsonl"):
            t = Trace.from_dict(row)
            ex = by_id[t.example_id]
            if ex.gold is None:
                continue  # an input whose answer no one knows cannot be labelled right or wrong
            meta = {k: v for k, v in (ex.meta or {}).items() if not (isinstance(v, str) and len(v) > META_CHARS)}
            row = {
                "id": f"{task.name}/{model}/{method}/{system}/{decoding}/{t.example_id}/{t.sample}",
                "task": task.name, "method": method, "system": system, "model": model, "decoding": decoding,
                "question": question_of(ex, task.name), "gold": ex.gold, "reply": t.final_text, "cut": was_cut(t),
                "calls": len(t.calls), "example_id": ex.id, "source": source,
            }
            if meta:
                row["meta"] = meta
            out.append(row)
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1].strip())
    manifest, dest = Path(argv[0]), Path(argv[1])
    seen: set[str] = set()
    rows: list[dict] = []
    targets: dict[str, str] = {}
    commands: dict[str, str] = {}
    for entry in read_jsonl(manifest):
        runs = sorted(p.parent for p in Path(entry["dir"]).rglob("run.json"))
        if not runs:
            raise SystemExit(f"{manifest}: no finished run (run.json) under {entry['dir']}")
        commands[entry["name"]] = entry["command"]
        for run_dir in runs:
            rows += records(run_dir, entry["name"], seen, targets)
    ids = [r["id"] for r in rows]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise SystemExit(f"duplicate reply ids: {sorted(dupes)[:5]}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "replies.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                        encoding="utf-8")
    (dest / "sources.json").write_text(json.dumps({"commands": commands, "tasks": targets}, indent=1) + "\n")
    print(f"{len(rows)} replies → {dest / 'replies.jsonl'}")


if __name__ == "__main__":
    main(sys.argv[1:])
