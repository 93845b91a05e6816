"""Draws docs/organism_summary.png, the README's summary of the paper's results on the CPU organism.

Reads the five rows' figures from a dated record (docs/results/<date>-organism-rows.json, metrics.json's keys)
and draws them with s2d's own report code (`s2d.report.points`, its markers, intervals and label placement):
one panel per row, accuracy against generated tokens per input, the paper's figures in each title, and a sixth
panel with last letter's distilled accuracy against unlabeled inputs.

Run: python docs/results/organism_summary.py [record.json] [out.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from s2d.paper import PAPER_ROWS
from s2d.plots import LABEL_SIZE, SYSTEM_MARKERS, _log_x_accuracy_axes, _yerr, label_offsets
from s2d.report import points

HERE = Path(__file__).resolve().parent
RECORD = HERE / "2026-12-03-organism-rows.json"
OUT = HERE.parent / "organism_summary.png"
COLORS = {"system1": "#7f7f7f", "system2": "#1f77b4", "distilled": "#d62728"}
NAMES = {"system1": "System 1", "system2": "System 2", "distilled": "distilled"}


def paper_line(task: str) -> str:
    table, _, paper = PAPER_ROWS[task]
    accs = " / ".join(f"{paper[s][0]:g}" for s in ("system1", "system2", "distilled"))
    return f"paper ({table}): {accs}%"


def draw(record: Path = RECORD, out: Path = OUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator

    data = json.loads(record.read_text())
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.2))
    for ax, run in zip(axes.flat, data["runs"]):
        mine = [p for p in points([run]) if p["accuracy"] is not None]
        xs = [max(p["tokens_per_input"], 0.5) for p in mine]
        for p, x in zip(mine, xs):
            ax.errorbar(x, 100 * p["accuracy"], yerr=_yerr([p]), fmt="none", ecolor=COLORS[p["system"]],
                        elinewidth=1.2, capsize=3, zorder=1)
            ax.scatter(x, 100 * p["accuracy"], marker=SYSTEM_MARKERS[p["system"]], s=90, color=COLORS[p["system"]],
                       edgecolor="black", linewidth=0.5, zorder=2)
        _log_x_accuracy_axes(ax, f"{run['row']}\n{paper_line(run['task'])}", "generated tokens per input (log)")
        ax.title.set_fontsize(9.5)
        ax.set_xlim(min(xs) / 1.6, max(xs) * 2.5)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        to_points = 72.0 / fig.dpi
        anchors = [tuple(v * to_points for v in ax.transData.transform((x, 100 * p["accuracy"])))
                   for p, x in zip(mine, xs)]
        texts = [f"{NAMES[p['system']]} {100 * p['accuracy']:.0f}%" for p in mine]
        for p, x, text, offset in zip(mine, xs, texts, label_offsets(anchors, texts, fontsize=LABEL_SIZE + 1.5)):
            ax.annotate(text, (x, 100 * p["accuracy"]), fontsize=LABEL_SIZE + 1.5, xytext=offset,
                        textcoords="offset points")
    curve = data["curve"]
    ax = axes.flat[5]
    pts = curve["points"]
    ax.errorbar([c["unlabeled"] for c in pts], [100 * c["accuracy"] for c in pts], yerr=_yerr(pts), marker="^",
                color=COLORS["distilled"], capsize=3, label="distilled")
    ax.axhline(100 * curve["system2"], linestyle="--", color=COLORS["system2"], label="System 2")
    ax.axhline(100 * curve["system1"], linestyle=":", color=COLORS["system1"], label="System 1")
    _log_x_accuracy_axes(ax, "last letter: distilled accuracy\nagainst unlabeled inputs", "unlabeled train inputs (log)")
    ax.title.set_fontsize(9.5)
    ax.set_xticks([c["unlabeled"] for c in pts])
    ax.legend(fontsize=8, loc="lower right")
    handles = [plt.Line2D([], [], marker=SYSTEM_MARKERS[s], linestyle="", color=COLORS[s], markeredgecolor="black",
                          label=NAMES[s]) for s in SYSTEM_MARKERS]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.text(0.99, 0.01, "bars: Wilson 95% interval; n = 100 eval items (S2A: 44)", ha="right", va="bottom",
             fontsize=8, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    print(draw(*args))
