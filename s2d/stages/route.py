"""The `routed` system: distilled System 1 answers first; a low confidence signal sends the input to System 2.

One stage directory, computed once per (distilled model, System 2 evaluation, eval.route):
  traces.jsonl    the distilled model's calls: its System 1 attempt (stage `answer`, exactly as the distilled
                  evaluation makes it) and the agreement samples (stage `route_sample`)
  logprobs.jsonl  the attempt's log-probability per sample (not part of trace records: see Completion.logprob)
  route.jsonl     per input: every available signal and its extra tokens, the distilled and System 2
                  answers, correctness and tokens: all any threshold needs
  frontier.json   every signal's figures at every threshold, calibration, the cheapest threshold reaching
                  System 2's accuracy within its interval
  predictions.jsonl, DONE.json   the routed system at the configured eval.route.signal and threshold
System 2's answers come from its own evaluate directory (evaluated if the run does not list it): the routed
system builds on the evaluate stage (`run` after `evaluate.run`), so this module imports evaluate, never the reverse.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_json, read_jsonl, require_done, rewrite_jsonl, stage_lock, \
    write_json
from s2d.config import sampling
from s2d.methods.base import single_call
from s2d.methods.system1 import System1
from s2d.routing import SIGNALS, agreement, calibration, cheapest_reaching, frontier, probability, route, \
    routed_rows, swap_consistency
from s2d.scoring import changes, score, task_figures
from s2d.stages import evaluate, resolved, stage_dir
from s2d.stages.inputs import load_task
from s2d.stats import wilson
from s2d.tasks.grading import grader_version, regrade
from s2d.tasks.judge import swap_verdict
from s2d.types import Example, Sampling, Trace

log = logging.getLogger(__name__)

ATTEMPT_STAGE = "answer"  # System1's call stage: the attempt's seeds equal the distilled evaluation's
SAMPLE_STAGE = "route_sample"  # its own seeds, so agreement samples never repeat the evaluation's eval.k samples


def key(cfg: DictConfig, distilled_key: str, system2_key: str) -> str:
    """The distilled evaluation's key (model, train dir, eval decoding), System 2's, eval.route, and the sampling
    seed, which the agreement samples always draw from (greedy evaluations leave it out of their keys)."""
    return cache.digest("evaluate", "routed", distilled_key, system2_key, cache.content(cfg.eval.route), cfg.seed)


def system_key(cfg: DictConfig, train: str) -> str:
    """The routed system's evaluate key, from the keys of the two evaluations it builds on."""
    return key(cfg, evaluate.system_key(cfg, "distilled", train), evaluate.system_key(cfg, "system2", train))


def run(cfg: DictConfig, train_dir: Path, evaluated: dict[str, Path], llm=None) -> dict[str, Path]:
    """`evaluated` (evaluate.run's directories) with the routed system's added, in eval.systems order, when
    eval.systems lists routed and there is a distilled model (evaluate.run warns when there is none)."""
    if "routed" not in cfg.eval.systems or not require_done(train_dir).get("trained"):
        return evaluated
    base = llm or instantiate(cfg.backend)
    routed = system_dir(cfg, load_task(cfg, base), base, train_dir, sampling(cfg.eval, cfg.seed))
    return {s: routed if s == "routed" else evaluated[s] for s in cfg.eval.systems if s == "routed" or s in evaluated}


def system_dir(cfg: DictConfig, task, base, train_dir: Path, samp: Sampling) -> Path:
    """The routed system's finished evaluate directory: reused (re-scored if its grader is older) or computed."""
    out = stage_dir(cfg, "evaluate", system_key(cfg, train_dir.name))
    if is_done(out):
        if read_json(out / "DONE.json").get("grader_version") != grader_version(task):
            # The grader changed since these answers were scored: score the stored replies again.
            with stage_lock(out):
                if read_json(out / "DONE.json").get("grader_version") != grader_version(task):
                    rescore(out, task)
        log.info("evaluate routed: reusing %s", out)
        return out
    # Routed reads System 2's answers: its directory first (outside routed's lock; it takes its own).
    system2_dir = evaluate.system_dir(cfg, "system2", task, base, train_dir, samp)
    with stage_lock(out):
        if not is_done(out):
            base.release()  # one engine at a time, as for distilled
            llm = evaluate.distilled_backend(cfg, train_dir)
            try:
                compute(cfg, out, task, system2_dir, llm, samp)
            finally:
                llm.release()
    return out


class _Recorder:
    """Passes calls through to a backend and keeps its completions, to read their log-probabilities."""

    def __init__(self, llm):
        self.llm, self.outs = llm, []

    def generate(self, prompts, sampling, desc="", seeds=None):
        out = self.llm.generate(prompts, sampling, desc=desc, seeds=seeds)
        self.outs.append(out)
        return out


def compute(cfg: DictConfig, out: Path, task, system2_dir: Path, llm, samp: Sampling) -> None:
    """The distilled model's (`llm`) calls for every signal, then the routing figures, into `out`."""
    route_cfg = cfg.eval.route
    examples = task.eval_examples()
    if route_cfg.signal == "swap" and _partners(examples) is None:
        raise ValueError(f"eval.route.signal=swap needs inputs judged in both orders; task '{task.name}' gives "
                         "none. Use task=oasst2 or task=mt_bench, or eval.route.signal=agreement|probability")
    recorder = _Recorder(llm)
    attempt = System1().run(examples, task, recorder, samp)
    (comps,) = recorder.outs  # zero-shot System 1 makes one call per input
    logprobs = [{"example_id": ex.id, "sample": k, "logprob": c.logprob}
                for ex, cs in zip(examples, comps) for k, c in enumerate(cs)]
    sampling = Sampling(n=int(route_cfg.k), temperature=float(route_cfg.temperature), top_p=float(route_cfg.top_p),
                        max_new_tokens=samp.max_new_tokens, seed=samp.seed, stop=samp.stop)
    samples = single_call(SAMPLE_STAGE, examples, [task.prompt(e) for e in examples], task, llm, sampling)
    rewrite_jsonl(out / "traces.jsonl", [t.to_dict() for t in attempt + samples])
    rewrite_jsonl(out / "logprobs.jsonl", logprobs)
    write_outputs(out, task, examples, attempt, samples, logprobs, system2_dir, str(route_cfg.signal),
                  float(route_cfg.threshold), {"config": resolved(cfg)})


def records(examples: list[Example], attempt: list[Trace], samples: list[Trace], logprobs: list[dict],
            system2: list[dict], task) -> list[dict]:
    """route.jsonl: per input, the available signals with their extra tokens, and both systems' outcomes.

    probability is available when the backend reported log-probabilities; swap when every input is one order
    of a judged pair (its extra cost: the attempt on the other order).
    """
    rows, _ = score(examples, attempt, task, "distilled")
    by_id = {r["example_id"]: r for r in rows}
    tried: dict[str, list[Trace]] = defaultdict(list)
    for t in sorted(attempt, key=lambda t: t.sample):
        tried[t.example_id].append(t)
    drawn: dict[str, list[str | None]] = defaultdict(list)
    for t in sorted(samples, key=lambda t: t.sample):
        drawn[t.example_id].append(t.answer)
    drawn_tokens: dict[str, int] = defaultdict(int)
    for t in samples:
        drawn_tokens[t.example_id] += t.completion_tokens
    lp = {(r["example_id"], r["sample"]): r["logprob"] for r in logprobs}
    has_probability = all(v is not None for v in lp.values())
    partner = _partners(examples)
    s2 = {r["example_id"]: r for r in system2}
    out = []
    for ex in examples:
        d = by_id[ex.id]
        signals = {"agreement": agreement(d["answer"], drawn[ex.id])}
        extra = {"agreement": drawn_tokens[ex.id]}
        if has_probability:
            # the first sample (of eval.k) that gave the predicted answer; eval.k = 1: the greedy reply
            first = next((t.sample for t in tried[ex.id] if t.answer == d["answer"]), 0)
            signals["probability"] = probability(d["answer"], lp[(ex.id, first)])
            extra["probability"] = 0
        if partner is not None:
            other = by_id.get(partner.get(ex.id))
            signals["swap"] = swap_consistency(d["answer"], other["answer"] if other else None, swap_verdict)
            extra["swap"] = other["tokens"] if other else 0
        if ex.id not in s2:
            raise ValueError(f"routed: System 2's predictions have no input '{ex.id}'; its evaluate directory "
                             "holds another eval split")
        b = s2[ex.id]
        out.append({"example_id": ex.id, "gold": ex.gold, "signals": signals, "signal_tokens": extra,
                    "distilled_answer": d["answer"], "distilled_correct": bool(d["correct"]),
                    "distilled_tokens": d["tokens"], "system2_answer": b["answer"],
                    "system2_correct": bool(b["correct"]), "system2_tokens": b["tokens"]})
    return out


def _partners(examples: list[Example]) -> dict[str, str] | None:
    """Each input's other order (judge tasks: meta pair/order); None when the task's inputs are not pairs."""
    if not examples or not all("pair" in e.meta and "order" in e.meta for e in examples):
        return None
    by_pair: dict[str, list[str]] = defaultdict(list)
    for e in examples:
        by_pair[e.meta["pair"]].append(e.id)
    return {i: j for ids in by_pair.values() if len(ids) == 2 for i, j in (ids, ids[::-1])}


def figures(recs: list[dict], signal: str, threshold: float, system2: dict) -> tuple[dict, dict]:
    """(frontier.json, the routed metrics) from route.jsonl records and System 2's figures."""
    available = [s for s in SIGNALS if all(s in r["signals"] for r in recs)]
    if signal not in available:
        why = {"probability": "the backend reported no log-probabilities (backend=hf with loop=pruned does)",
               "swap": "the task's inputs are not judged pairs (use task=oasst2 or task=mt_bench)"}.get(signal, "")
        raise ValueError(f"eval.route.signal={signal} is not available here: {why}; available: {', '.join(available)}")
    target = system2["ci_low"]
    per_signal = {}
    for s in available:
        points = frontier(recs, s)
        per_signal[s] = {"points": points, "calibration": calibration(recs, s, threshold),
                         "reaches_system2": cheapest_reaching(points, target)}
    at = route(recs, signal, threshold)
    n = max(1, len(recs))
    frontier_json = {"signal": signal, "threshold": threshold, "at_threshold": at, "system2": system2,
                     "distilled": _distilled(recs), "signals": per_signal}
    m = {"routed/accuracy": at["accuracy"], "routed/accuracy_ci_low": at["ci_low"],
         "routed/accuracy_ci_high": at["ci_high"], "routed/n": at["n"], "routed/tokens_per_input": at["tokens_per_input"],
         "routed/share_routed": at["share_routed"], "routed/threshold": threshold, "routed/signal": signal,
         "routed/signal_tokens_per_input": sum(r["signal_tokens"][signal] for r in recs) / n}
    reach = per_signal[signal]["reaches_system2"]
    if reach is not None:
        m.update({f"routed/reaches_system2/{k}": reach[k]
                  for k in ("threshold", "accuracy", "tokens_per_input", "share_routed")})
    for s in available:
        m.update({f"routed/calibration/{s}/{k}": v for k, v in per_signal[s]["calibration"].items()})
    return frontier_json, m


def _distilled(recs: list[dict]) -> dict:
    """The distilled attempt alone (no routing, no signal), for the frontier plot."""
    n, k = len(recs), sum(r["distilled_correct"] for r in recs)
    low, high = wilson(k, n)
    return {"accuracy": k / max(1, n), "ci_low": low, "ci_high": high, "n": n,
            "tokens_per_input": sum(r["distilled_tokens"] for r in recs) / max(1, n)}


def write_outputs(out: Path, task, examples, attempt, samples, logprobs, system2_dir: Path, signal: str,
                  threshold: float, extra: dict) -> dict:
    """route.jsonl, frontier.json, predictions.jsonl and DONE.json from the stored calls; returns the metrics."""
    info = require_done(system2_dir)
    system2_rows = read_jsonl(system2_dir / "predictions.jsonl")
    system2 = {"accuracy": info["system2/accuracy"], "ci_low": info["system2/accuracy_ci_low"],
               "ci_high": info["system2/accuracy_ci_high"], "n": info["system2/n"],
               "tokens_per_input": info["system2/tokens_per_input"]}
    recs = records(examples, attempt, samples, logprobs, system2_rows, task)
    frontier_json, metrics = figures(recs, signal, threshold, system2)
    rows = routed_rows(recs, signal, threshold)
    metrics.update(task_figures(examples, rows, task, "routed"))
    rewrite_jsonl(out / "route.jsonl", recs)
    write_json(out / "frontier.json", frontier_json)
    rewrite_jsonl(out / "predictions.jsonl", rows)
    mark_done(out, {"stage": "evaluate", "system": "routed", **extra, **metrics, "grader_version": grader_version(task),
                    "system2_dir": str(system2_dir), "route": {"signal": signal, "threshold": threshold}})
    log.info("evaluate routed (%s < %g): accuracy %.3f, %.1f tokens per input, %.0f%% routed to System 2", signal,
             threshold, metrics["routed/accuracy"], metrics["routed/tokens_per_input"],
             100 * metrics["routed/share_routed"])
    return metrics


def _stored(out: Path, task) -> tuple[list[Trace], list[Trace], list[dict]]:
    traces = regrade([Trace.from_dict(r) for r in read_jsonl(out / "traces.jsonl")], task)
    attempt = [t for t in traces if t.calls[0].stage == ATTEMPT_STAGE]
    samples = [t for t in traces if t.calls[0].stage == SAMPLE_STAGE]
    return attempt, samples, read_jsonl(out / "logprobs.jsonl")


def rescore(out: Path, task) -> dict:
    """Grade the stored distilled replies again and rebuild the routing figures; no model is called.

    System 2's evaluate directory is re-scored first when its grader is older than the task's.
    """
    info = require_done(out)
    system2_dir = Path(info["system2_dir"])
    if read_json(system2_dir / "DONE.json").get("grader_version") != grader_version(task):
        evaluate.rescore(system2_dir, task, "system2")
    stored = read_jsonl(out / "predictions.jsonl")
    attempt, samples, logprobs = _stored(out, task)
    kept = {k: v for k, v in info.items() if "/" not in k and k not in ("versions", "git_sha", "grader_version",
                                                                          "route", "system2_dir")}
    metrics = write_outputs(out, task, task.eval_examples(), attempt, samples, logprobs, system2_dir,
                            info["route"]["signal"], info["route"]["threshold"],
                            {**kept, "rescored": {"from_grader_version": info.get("grader_version")}})
    rows = read_jsonl(out / "predictions.jsonl")
    changed, flipped = changes(stored, rows)
    return {"system": "routed", "n": len(rows), "answers_changed": changed, "verdicts_changed": flipped,
            "accuracy_before": info.get("routed/accuracy"), "accuracy_after": metrics["routed/accuracy"],
            "grader_version_before": info.get("grader_version"), "grader_version_after": grader_version(task)}
