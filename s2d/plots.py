"""Every figure s2d draws, with matplotlib (Agg, to files): the report's accuracy-versus-tokens points, the
distilled-accuracy curve against unlabeled inputs, the routed system's frontier, and the README's summary. Plain data in (rows and
frontier.json as the report and the routed stage build them), a PNG out; used by s2d/report.py (sweeps) and
s2d/stages/report.py (one run's frontier)."""

from __future__ import annotations

from pathlib import Path

SYSTEM_MARKERS = {"system1": "o", "system2": "s", "distilled": "^"}


def _log_x_accuracy_axes(ax, title: str, xlabel: str) -> None:
    """One panel: log-scale x with plain-number ticks, accuracy in % on y."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def plot_curve(rows: list[dict], path: Path) -> Path:
    """Distilled accuracy against the number of unlabeled inputs (report `curve` rows), one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [c for c in rows if c["task"] == task]
        for key in sorted({(c["method"], c["filter"], c["distill_from"]) for c in mine}):
            line = [c for c in mine if (c["method"], c["filter"], c["distill_from"]) == key]
            ax.errorbar([c["unlabeled"] for c in line], [100 * c["accuracy"] for c in line],
                        yerr=_yerr(line), marker="^", capsize=3,
                        label=f"distilled {key[0] if key[2] == 'method' else 'system1'} [{key[1]}]")
        for system, style in (("system1", ":"), ("system2", "--")):
            if mine[0][system] is not None:
                ax.axhline(100 * mine[0][system], linestyle=style, color="gray", label=system)
        _log_x_accuracy_axes(ax, task, "unlabeled train inputs (log)")
        ax.set_xticks(sorted({c["unlabeled"] for c in mine}))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _yerr(pts: list[dict]) -> list[list[float]]:
    """Error bar lengths below and above each point (in %), from its interval; 0 where it has none."""
    below = [100 * (p["accuracy"] - p["ci_low"]) if p.get("ci_low") is not None else 0.0 for p in pts]
    above = [100 * (p["ci_high"] - p["accuracy"]) if p.get("ci_high") is not None else 0.0 for p in pts]
    return [below, above]


LABEL_SIZE = 7  # font size of point labels, in points


def label_offsets(anchors: list[tuple[float, float]], texts: list[str], fontsize: float = LABEL_SIZE,
                  gap: float = 4.0) -> list[tuple[float, float]]:
    """Offsets (in points) of each point's label from its point, so that no two labels overlap.

    `anchors`: the points' positions in points on the figure. Each label is a box to the point's upper
    right, of estimated width 0.6 × fontsize per character; one that would overlap an earlier label moves
    down or up a line at a time (nearest free line first), so labels of coinciding points stack.
    """
    line = fontsize * 1.3
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for (x, y), text in zip(anchors, texts):
        width = 0.6 * fontsize * len(text)
        for step in range(200):
            dy = gap + line * ((step + 1) // 2) * (1 if step % 2 == 0 else -1)
            box = (x + gap, y + dy, x + gap + width, y + dy + line)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        out.append((gap, dy))
    return out


def plot_points(pts: list[dict], path: Path) -> Path:
    """Accuracy against generated tokens per input, one panel per task: each report row a labelled point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator

    tasks = sorted({p["task"] for p in pts})
    methods = sorted({p["method"] for p in pts})
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [p for p in pts if p["task"] == task and p["accuracy"] is not None]
        xs = [max(p["tokens_per_input"], 0.5) for p in mine]
        for p, x in zip(mine, xs):
            ax.errorbar(x, 100 * p["accuracy"], yerr=_yerr([p]), fmt="none",
                        ecolor=colors[p["method"]], elinewidth=1, capsize=3, alpha=0.8, zorder=1)
            ax.scatter(x, 100 * p["accuracy"], marker=SYSTEM_MARKERS[p["system"]], s=70, color=colors[p["method"]],
                       edgecolor="black", linewidth=0.5, zorder=2)
        _log_x_accuracy_axes(ax, task, "generated tokens per input (log)")
        if xs:
            ax.set_xlim(min(xs) / 1.5, max(xs) * 1.8)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        label_points(fig, ax, mine, xs, [p["row"] for p in mine])
    handles = [plt.Line2D([], [], marker=mk, linestyle="", color="gray", label=s) for s, mk in SYSTEM_MARKERS.items()]
    handles += [plt.Line2D([], [], marker="o", linestyle="", color=colors[m], label=f"method {m}") for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    return save(fig, path, "bars: Wilson 95% interval", bottom=0.06)


SYSTEM_STYLE = {"system1": ("o", "System 1"), "system2": ("s", "System 2"), "distilled": ("^", "distilled")}


def draw_frontier(ax, frontier: dict, system1: dict | None = None, label: str = "") -> None:
    """One task's accuracy-versus-tokens axes: System 1, System 2 and distilled points (with their Wilson
    intervals), one routed curve per signal, the configured threshold starred."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    xs = []
    for name, p in (("system1", system1), ("system2", frontier["system2"]), ("distilled", frontier["distilled"])):
        if p is None:
            continue
        x = max(p["tokens_per_input"], 0.5)  # a log axis: a free system stays on the plot
        yerr = None
        if p.get("ci_low") is not None:
            yerr = [[100 * (p["accuracy"] - p["ci_low"])], [100 * (p["ci_high"] - p["accuracy"])]]
        marker, text = SYSTEM_STYLE[name]
        ax.errorbar([x], [100 * p["accuracy"]], yerr=yerr, fmt=marker, color="black" if name == "system2" else None,
                    markersize=8, capsize=3, label=text, zorder=3)
        xs.append(x)
    for signal, data in frontier["signals"].items():
        pts = sorted(data["points"], key=lambda p: p["tokens_per_input"])
        auroc = data["calibration"]["auroc"]
        ax.plot([max(p["tokens_per_input"], 0.5) for p in pts], [100 * p["accuracy"] for p in pts], marker=".",
                label=f"routed: {signal}" + (f" (AUROC {auroc:.2f})" if auroc is not None else ""), zorder=2)
        xs += [max(p["tokens_per_input"], 0.5) for p in pts]
    at = frontier["at_threshold"]
    ax.scatter([max(at["tokens_per_input"], 0.5)], [100 * at["accuracy"]], marker="*", s=160, color="gold",
               edgecolor="black", zorder=4, label=f"routed at {frontier['signal']} < {frontier['threshold']:g}")
    low = frontier["system2"]["ci_low"]
    ax.axhline(100 * low, color="gray", linestyle=":", linewidth=1, label="System 2's interval, lower end")
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("generated tokens per input (log)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def plot_frontiers(panels: list[tuple[str, dict, dict | None]], path: Path) -> Path:
    """One panel per (title, frontier.json, System 1 point), side by side, into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for ax, (title, frontier, system1) in zip(axes[0], panels):
        draw_frontier(ax, frontier, system1, title)
    return save(fig, path, "bars: Wilson 95% interval; each curve point: one threshold", bottom=0.03)


def label_points(fig, ax, pts: list[dict], xs: list[float], texts: list[str], fontsize: float = LABEL_SIZE) -> None:
    """Annotate each point with its text, placed apart (label_offsets) once the axes' limits are final."""
    to_points = 72.0 / fig.dpi
    anchors = [tuple(v * to_points for v in ax.transData.transform((x, 100 * p["accuracy"])))
               for p, x in zip(pts, xs)]
    for p, x, text, offset in zip(pts, xs, texts, label_offsets(anchors, texts, fontsize=fontsize)):
        ax.annotate(text, (x, 100 * p["accuracy"]), fontsize=fontsize, xytext=offset, textcoords="offset points")


def save(fig, path: Path, note: str, bottom: float, fontsize: float = 7, dpi: int = 120) -> Path:
    """The figure with its grey footnote, laid out above `bottom` (room for a legend), written and closed."""
    import matplotlib.pyplot as plt

    fig.text(0.99, 0.01, note, ha="right", va="bottom", fontsize=fontsize, color="gray")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


SUMMARY_COLORS = {"system1": "#7f7f7f", "system2": "#1f77b4", "distilled": "#d62728"}
SUMMARY_NAMES = {"system1": "System 1", "system2": "System 2", "distilled": "distilled"}


def plot_summary(panels: list[tuple[str, list[dict]]], curve: dict, note: str, path: Path) -> Path:
    """The README's summary: one panel per (title, points of one row), accuracy against tokens per input, and
    a sixth with the distilled accuracy against unlabeled inputs (`curve`: points, system1, system2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator

    colors, names = SUMMARY_COLORS, SUMMARY_NAMES
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.2))
    for ax, (title, pts) in zip(axes.flat, panels):
        mine = [p for p in pts if p["accuracy"] is not None]
        xs = [max(p["tokens_per_input"], 0.5) for p in mine]
        for p, x in zip(mine, xs):
            ax.errorbar(x, 100 * p["accuracy"], yerr=_yerr([p]), fmt="none", ecolor=colors[p["system"]],
                        elinewidth=1.2, capsize=3, zorder=1)
            ax.scatter(x, 100 * p["accuracy"], marker=SYSTEM_MARKERS[p["system"]], s=90, color=colors[p["system"]],
                       edgecolor="black", linewidth=0.5, zorder=2)
        _log_x_accuracy_axes(ax, title, "generated tokens per input (log)")
        ax.title.set_fontsize(9.5)
        ax.set_xlim(min(xs) / 1.6, max(xs) * 2.5)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        label_points(fig, ax, mine, xs, [f"{names[p['system']]} {100 * p['accuracy']:.0f}%" for p in mine],
                     fontsize=LABEL_SIZE + 1.5)
    ax = axes.flat[5]
    pts = curve["points"]
    ax.errorbar([c["unlabeled"] for c in pts], [100 * c["accuracy"] for c in pts], yerr=_yerr(pts), marker="^",
                color=colors["distilled"], capsize=3, label="distilled")
    ax.axhline(100 * curve["system2"], linestyle="--", color=colors["system2"], label="System 2")
    ax.axhline(100 * curve["system1"], linestyle=":", color=colors["system1"], label="System 1")
    _log_x_accuracy_axes(ax, "last letter: distilled accuracy\nagainst unlabeled inputs", "unlabeled train inputs (log)")
    ax.title.set_fontsize(9.5)
    ax.set_xticks([c["unlabeled"] for c in pts])
    ax.legend(fontsize=8, loc="lower right")
    handles = [plt.Line2D([], [], marker=SYSTEM_MARKERS[s], linestyle="", color=colors[s], markeredgecolor="black",
                          label=names[s]) for s in SYSTEM_MARKERS]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    return save(fig, path, note, bottom=0.04, fontsize=8, dpi=110)
