"""Draws docs/organism_summary.png, the README's summary of the paper's results on the CPU organism.

Reads the five rows' figures from a dated record (docs/results/<date>-organism-rows.json, metrics.json's keys)
and draws them with s2d's own code (`s2d.report.points`, then `s2d.plots.plot_summary`):
one panel per row, accuracy against generated tokens per input, the paper's figures in each title, and a sixth
panel with last letter's distilled accuracy against unlabeled inputs.

Run: python docs/results/organism_summary.py [record.json] [out.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from s2d.paper import PAPER_ROWS
from s2d.plots import plot_summary
from s2d.report import points

HERE = Path(__file__).resolve().parent
RECORD = HERE / "2026-12-07-organism-rows.json"
# The dated records that hold, as measured, every figure RECORD transcribes (tests/test_docs.py checks them).
SOURCES = ("2026-12-07-organism-rows-regraded.md", "2026-12-03-organism-rows.md", "2026-12-03-organism-s2a-capitals.md",
           "2026-12-03-organism-last-letter.md", "2026-12-03-organism-paper-readme.md")
OUT = HERE.parent / "organism_summary.png"


def paper_line(task: str) -> str:
    table, _, paper = PAPER_ROWS[task]
    accs = " / ".join(f"{paper[s][0]:g}" for s in ("system1", "system2", "distilled"))
    return f"paper ({table}): {accs}%"


def draw(record: Path = RECORD, out: Path = OUT) -> Path:
    data = json.loads(record.read_text())
    panels = [(f"{run['row']}\n{paper_line(run['task'])}", points([run])) for run in data["runs"]]
    return plot_summary(panels, data["curve"], "bars: Wilson 95% interval; n = 100 eval items (S2A: 44)", out)


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    print(draw(*args))
