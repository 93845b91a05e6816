"""How often the graders agree with a human on replies s2d's own runs wrote: `python -m s2d.agreement`.

Three files under tests/assets/real_replies/ (the defaults):

- replies.jsonl: real replies collected from s2d runs (benchmarks/collect_replies.py), one per line, with the
  example's meta the task's `score` needs; sources.json names the command behind each `source` and the class
  of each task;
- labels.jsonl: a hand label per sampled reply, written before the grader's verdict was looked at:
  {"id", "answer": the committed answer as a human reads it, or "unparsed" (no commitment, a hedge, a
  contradiction), "correct": true/false against the gold, "why": a note where the call is not obvious};
- categories.jsonl: for each reply where the grader's verdict and the label's disagree, why ({"id", "category",
  "note"}), written after looking at the disagreement. One category of CATEGORIES.

The report gives per task the share of labelled replies whose right/wrong verdict the current grader
(the task's own `extract` then `score`) shares with the label, with its Wilson 95% interval, then every
disagreement with its category. Where the task's answer is a value (yes/no, letters, a number, a verdict
tag) it also counts replies whose extracted value differs from the labelled one while the verdict agrees
(e.g. both wrong, but the grader read another wrong value or read a value where the human reads none).

`python -m s2d.agreement sample` draws the stratified sample to label (up to 24 replies per task × system ×
model) and prints it without any grader output.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from s2d.stats import wilson
from s2d.types import Example

ASSETS = Path(__file__).resolve().parent.parent / "tests" / "assets" / "real_replies"
CATEGORIES = {
    "negation": "the answer appears only negated or rejected, or a negated sentence is read as the answer",
    "check-step": "a verdict about an earlier answer ('is correct') is read as the answer",
    "layout": "the answer stands where the grader does not look (next line, heading, list, tag form)",
    "number-choice": "another number of the committed sentence (an operand, a step) is taken for the answer",
    "hedge": "the reply names several answers or hedges, and the grader credits or reads one of them",
    "continuation": "the reply answers, then writes a new question or turn of its own that the grader reads",
    "explanation-after-answer": "words after the answer (a reason, a spelled-out check) change what is read",
    "echo": "the reply repeats the question, the user's opinion or the instructions, and that is read",
    "cut": "the reply stops at the token cap, and the grader reads or drops an unfinished part",
    "off-format": "the reply commits to something not of the task's answer kind (names for letters), or the grader "
                  "reads a value out of a reply that commits to none",
    "other": "none of the above (see the note)",
}
# Tasks whose extracted answer is a value a label can be compared with; TriviaQA's is the committed text.
VALUE_TASKS = {"coin_flip", "last_letter", "last_letter_letterwise", "multiplication", "gsm8k", "oasst2", "mt_bench"}
NUMERIC_TASKS = {"multiplication", "gsm8k"}


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=None)
def task_for(target: str):
    """The task whose grader reads the reply, built with its defaults (graders depend on no argument)."""
    from hydra.utils import get_class

    return get_class(target)()


def grade(reply: dict, target: str) -> tuple[str | None, bool]:
    """The current grader's answer and verdict on a stored reply; `target`: the task's class."""
    task = task_for(target)
    answer = task.extract(reply["reply"], truncated=reply["cut"])
    example = Example(id=reply["example_id"], input="", gold=reply["gold"], meta=reply.get("meta", {}))
    return answer, bool(task.score(answer, example))


def same_value(task: str, label: str, answer: str | None) -> bool:
    """Whether the labelled answer and the grader's extracted one are the same value."""
    if label == "unparsed" or answer is None:
        return label == "unparsed" and answer is None
    if task in NUMERIC_TASKS:
        try:
            return abs(float(label.replace(",", "")) - float(answer)) < 1e-6
        except ValueError:
            return False
    return label.strip().lower() == answer.strip().lower()


def measure(replies_path: Path = ASSETS / "replies.jsonl", labels_path: Path = ASSETS / "labels.jsonl",
            categories_path: Path = ASSETS / "categories.jsonl") -> dict:
    """Per-task agreement, and every disagreement with its category (see the module's docstring)."""
    replies = {r["id"]: r for r in read_jsonl(replies_path)}
    targets = json.loads((replies_path.parent / "sources.json").read_text())["tasks"]
    labels = read_jsonl(labels_path)
    categories = {c["id"]: c for c in read_jsonl(categories_path)} if categories_path.exists() else {}
    for c in categories.values():
        if c["category"] not in CATEGORIES:
            raise ValueError(f"{categories_path}: {c['id']} has category {c['category']!r}; "
                             f"allowed: {', '.join(CATEGORIES)}")
    missing = [lab["id"] for lab in labels if lab["id"] not in replies]
    if missing:
        raise ValueError(f"{labels_path}: {len(missing)} labels name no reply of {replies_path}, e.g. {missing[0]}")
    per_task: dict[str, Counter] = defaultdict(Counter)
    verdict_off, value_off = [], []
    for lab in labels:
        r = replies[lab["id"]]
        answer, correct = grade(r, targets[r["task"]])
        counts = per_task[r["task"]]
        counts["n"] += 1
        counts["agree"] += correct == lab["correct"]
        counts["label_correct"] += lab["correct"]
        counts["grader_correct"] += correct
        counts["label_unparsed"] += lab["answer"] == "unparsed"
        counts["grader_unparsed"] += answer is None
        row = {"id": r["id"], "task": r["task"], "system": r["system"], "model": r["model"], "cut": r["cut"],
               "label": lab["answer"], "label_correct": lab["correct"], "grader": answer, "grader_correct": correct,
               "category": categories.get(r["id"], {}).get("category", "uncategorised"),
               "note": categories.get(r["id"], {}).get("note", ""), "kind": value_kind(lab["answer"], answer)}
        if correct != lab["correct"]:
            verdict_off.append(row)
        elif r["task"] in VALUE_TASKS:
            counts["value_n"] += 1
            if same_value(r["task"], lab["answer"], answer):
                counts["value_agree"] += 1
            else:
                value_off.append(row)
    tasks = {}
    for name, c in sorted(per_task.items()):
        low, high = wilson(c["agree"], c["n"])
        tasks[name] = {**c, "agreement": c["agree"] / c["n"], "ci_low": low, "ci_high": high}
    n, agree = sum(c["n"] for c in per_task.values()), sum(c["agree"] for c in per_task.values())
    low, high = wilson(agree, n)
    return {"replies": len(replies), "labels": len(labels), "tasks": tasks,
            "all": {"n": n, "agree": agree, "agreement": agree / max(1, n), "ci_low": low, "ci_high": high},
            "verdict_disagreements": verdict_off, "value_disagreements": value_off,
            "by_category": dict(Counter(d["category"] for d in verdict_off).most_common()),
            "value_by_kind": dict(Counter(d["kind"] for d in value_off).most_common())}


def value_kind(label: str, answer: str | None) -> str:
    """How a labelled value and the grader's differ: the label's side first."""
    if label == "unparsed":
        return "unparsed-vs-value"
    return "value-vs-unparsed" if answer is None else "other-value"


def render(m: dict) -> str:
    out = [f"grader vs hand labels: {m['labels']} labelled of {m['replies']} real replies",
           f"{'task':<16}{'n':>5}  {'agreement':<22}{'right: label/grader':>21}{'unparsed: label/grader':>24}"]
    for name, t in m["tasks"].items():
        out.append(f"{name:<16}{t['n']:>5}  {t['agreement']:.3f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}]"
                   f"{t['label_correct']:>14} / {t['grader_correct']:<6}{t['label_unparsed']:>15} / {t['grader_unparsed']}")
    a = m["all"]
    out.append(f"{'all':<16}{a['n']:>5}  {a['agreement']:.3f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]")
    out.append("[low, high]: Wilson 95% interval; agreement: the grader's right/wrong verdict equals the label's")
    for title, rows, cats, key in (
            ("verdict disagreements", m["verdict_disagreements"], m["by_category"], "category"),
            ("same verdict, another value read", m["value_disagreements"], m["value_by_kind"], "kind")):
        out.append(f"\n{title}: {len(rows)}  ({', '.join(f'{k} {v}' for k, v in cats.items()) or 'none'})")
        for d in rows:
            mark = "right" if d["label_correct"] else "wrong"
            out.append(f"  [{d[key]}] {d['id']}{' (cut)' if d['cut'] else ''}: label {d['label']!r} ({mark}), "
                       f"grader {d['grader']!r} ({'right' if d['grader_correct'] else 'wrong'})"
                       + (f" — {d['note']}" if d["note"] else ""))
    return "\n".join(out)


def stratified_sample(replies: list[dict], per_stratum: int = 24, seed: int = 0) -> list[dict]:
    """Up to `per_stratum` replies of each task × system × model, drawn with a seed of their own per stratum, so
    one stratum's draw does not depend on which others the file holds."""
    strata: dict[tuple, list[dict]] = defaultdict(list)
    for r in replies:
        strata[(r["task"], r["system"], r["model"])].append(r)
    picked = []
    for key, rows in strata.items():
        rows = sorted(rows, key=lambda r: r["id"])
        random.Random(f"{seed}/{'/'.join(key)}").shuffle(rows)
        picked += rows[:per_stratum]
    return sorted(picked, key=lambda r: r["id"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m s2d.agreement", description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="report", choices=["report", "sample"])
    parser.add_argument("--replies", type=Path, default=ASSETS / "replies.jsonl")
    parser.add_argument("--labels", type=Path, default=ASSETS / "labels.jsonl")
    parser.add_argument("--categories", type=Path, default=ASSETS / "categories.jsonl")
    parser.add_argument("--per-stratum", type=int, default=24, help="sample: replies drawn per task × system × model")
    parser.add_argument("--seed", type=int, default=0, help="sample: the draw's seed")
    parser.add_argument("--json", type=Path, help="report: also write the figures and disagreements here")
    args = parser.parse_args(argv)
    if args.what == "sample":
        for r in stratified_sample(read_jsonl(args.replies), args.per_stratum, args.seed):
            meta = r.get("meta", {})
            shown = {"id": r["id"], "question": r["question"], "gold": r["gold"], "aliases": meta.get("aliases"),
                     "incorrect": meta.get("incorrect"), "cut": r["cut"], "reply": r["reply"]}
            print(json.dumps({k: v for k, v in shown.items() if v is not None}, ensure_ascii=False))
        return
    m = measure(args.replies, args.labels, args.categories)
    print(render(m))
    if args.json:
        args.json.write_text(json.dumps(m, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
