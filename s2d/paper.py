"""The organism's rows next to the paper's tables: `paper.md` after `python -m s2d.run -m experiment=organism/paper`.

A sweep report (above the stages, beside s2d/report.py): each row's System 1 / System 2 / distilled accuracy
with its Wilson interval, beside the paper's figures, and whether issue 19's goal for the row was met.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from s2d.report import interval, load_runs, percent

log = logging.getLogger(__name__)


# S2A, on the biased items; beside both the TriviaQA row and the organism's row on world capitals (s2d/tasks/capitals.py).
TABLE_2 = ("Table 2", "TriviaQA with opinions, biased (S2A)",
           {"system1": (51.6, 165), "system2": (76.0, 147), "distilled": (81.3, 56)})
# task name → (table, the paper's task, {system: (accuracy %, tokens)}).
PAPER_ROWS = {
    "last_letter": ("Table 1", "last letter (2-step RaR)",
                    {"system1": (30.0, 27.1), "system2": (44.5, 41.5), "distilled": (98.0, 25.5)}),
    "coin_flip": ("Table 1", "coin flip (2-step RaR)",
                  {"system1": (56.1, 61.9), "system2": (77.2, 112.4), "distilled": (75.7, 50.3)}),
    "multiplication": ("Table 4", "GSM8k (CoT zero-shot, k=1)",
                       {"system1": (7.58, 57), "system2": (52.77, 270), "distilled": (7.13, 18)}),
    "triviaqa": TABLE_2,
    "capitals": TABLE_2,
    # a judge row: accuracy is agreement with the gold verdict over both orders of each pair
    "coin_judge": ("Table 3", "OASST2 agreement (BSM, Llama-2-70B-chat)",
                   {"system1": (32.0, 4), "system2": (49.1, 2117.8), "distilled": (58.4, 4)}),
}
# Judge rows: the paper's % inconsistent (a pair's verdict changes when its replies are swapped), Table 3.
PAPER_INCONSISTENT = {"coin_judge": {"system1": 56.7, "system2": 30.4, "distilled": 12.2}}
# Issue 19's goals per row: (System 2 − System 1 at least, distilled at least System 2 − this) in points;
# None: the row is a control where distillation is expected to fail.
GOALS = {"last_letter": (30, 10), "coin_flip": (30, 5), "multiplication": (15, None), "triviaqa": (20, 5),
         "capitals": (20, 5)}
# Judge rows: (System 2's agreement − System 1's at least, distilled's at least System 2's − this); and % inconsistent:
# System 2 at most half System 1's, distilled at most System 2's.
JUDGE_GOALS = {"coin_judge": (15, 5)}
# Rows whose paper figure is over one group of eval items (metrics `<system>/accuracy_<group>`): Table 2's
# S2A figures are over the biased items.
GROUP = {"triviaqa": "biased", "capitals": "biased"}


def row_metrics(task: str, m: dict) -> dict:
    """The run's metrics as the paper reports the row: for a grouped row, the group's figures in place of the
    whole split's (accuracy, its interval and n, tokens per input)."""
    group = GROUP.get(task)
    if group is None:
        return m
    return {**m, **{k.replace(f"_{group}", ""): v for k, v in m.items() if f"_{group}" in k}}


def paper_table(runs: list[dict]) -> str:
    """Markdown: each organism row's System 1 / System 2 / distilled accuracy (Wilson 95% interval, n) and
    tokens per input beside the paper's, and whether issue 19's goal for the row was met."""
    lines = ["| row | system | organism accuracy [95% CI] (n) | tokens | paper accuracy | paper tokens |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for r in sorted(runs, key=lambda r: list(PAPER_ROWS).index(r["task"]) if r["task"] in PAPER_ROWS else 99):
        m, (table, what, paper) = row_metrics(r["task"], r["metrics"]), PAPER_ROWS.get(r["task"], ("", r["task"], {}))
        for system in ("system1", "system2", "distilled"):
            acc = m.get(f"{system}/accuracy")
            shown = percent(acc, *interval(m, system), m.get(f"{system}/n")) if acc is not None else "—"
            tokens = m.get(f"{system}/tokens_per_input")
            p_acc, p_tok = paper.get(system, (None, None))
            p_shown = "" if p_acc is None else f"{p_acc}%"
            if r["task"] in PAPER_INCONSISTENT:
                if m.get(f"{system}/inconsistent") is not None:
                    shown += f"; {100 * m[f'{system}/inconsistent']:.1f}% inconsistent"
                p_shown += f"; {PAPER_INCONSISTENT[r['task']][system]}% inconsistent"
            lines.append(f"| {r['task']} ({r['method']}, {m.get('filter/seen')} inputs) | {system} | {shown} | "
                         f"{'—' if tokens is None else f'{tokens:.1f}'} | "
                         f"{'' if p_acc is None else f'{p_shown} ({table}: {what})'} | {'' if p_tok is None else p_tok} |")
        verdicts.append(goal_verdict(r["task"], r["metrics"]))
    return "\n".join(lines) + "\n\nGoals (issue 19):\n\n" + "\n".join(f"- {v}" for v in verdicts if v) + "\n"


def goal_verdict(task: str, m: dict) -> str | None:
    """One line: the row's System 2 gain and distilled gap against its goal, met or not, in points."""
    m = row_metrics(task, m)
    if task in JUDGE_GOALS:
        return judge_goal_verdict(task, m)
    if task not in GOALS or m.get("system2/accuracy") is None:
        return None
    gain_goal, gap_goal = GOALS[task]
    s1, s2, d = (100 * (m.get(f"{s}/accuracy") or 0.0) for s in ("system1", "system2", "distilled"))
    gain = f"System 2 − System 1 = {s2 - s1:+.1f} points (goal ≥ +{gain_goal}: {'met' if s2 - s1 >= gain_goal else 'not met'})"
    if gap_goal is None:
        # failing: the distilled model recovers less than half of System 2's gain over System 1
        failed = d - s1 < (s2 - s1) / 2
        dist = f"distilled {d:.1f}% vs System 2 {s2:.1f}% (control: expected to fail, {'did' if failed else 'did not'})"
    else:
        dist = (f"distilled − System 2 = {d - s2:+.1f} points (goal ≥ −{gap_goal}: "
                f"{'met' if d >= s2 - gap_goal else 'not met'})")
    return f"{task}: {gain}; {dist}"


def judge_goal_verdict(task: str, m: dict) -> str | None:
    """One line for a judge row: agreement gains and % inconsistent against issue 19's goals, in points."""
    if m.get("system2/agreement") is None:
        return None
    gain_goal, gap_goal = JUDGE_GOALS[task]
    (a1, a2, ad), (i1, i2, i_d) = ([100 * (m.get(f"{s}/{k}") or 0.0) for s in ("system1", "system2", "distilled")]
                                   for k in ("agreement", "inconsistent"))

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    return (f"{task}: System 2 − System 1 agreement = {a2 - a1:+.1f} points (goal ≥ +{gain_goal}: {met(a2 - a1 >= gain_goal)}), "
            f"inconsistent {i2:.1f}% vs System 1 {i1:.1f}% (goal ≤ half: {met(i2 <= i1 / 2)}); distilled − System 2 "
            f"agreement = {ad - a2:+.1f} points (goal ≥ −{gap_goal}: {met(ad >= a2 - gap_goal)}), inconsistent "
            f"{i_d:.1f}% (goal ≤ System 2's: {met(i_d <= i2)})")


class PaperTable(Callback):
    """Hydra callback (experiments/organism/paper.yaml): after the multirun, `paper.md` in the sweep
    directory holds the organism's rows next to the paper's tables."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        text = "# The organism's rows next to the paper\n\n" + paper_table(load_runs(sweep_dir))
        (sweep_dir / "paper.md").write_text(text)
        print(text)
        log.info("wrote %s", sweep_dir / "paper.md")
