"""`python -m s2d.plan [the overrides of s2d.run]`: what a run (or each cell of a sweep, `-m`) will cost, before
anything large runs, estimated from a measured pilot.

The pilot is the same cell at a small, seeded size (`plan.n_train` inputs, `plan.n_eval` eval items, raised to
fill one batch of the run): the real stages run on it and cache their directories like any stage, so planning
twice costs nothing the second time. From its records (the token counts every call already holds) the planner
takes each stage's generated tokens per input, with their spread, and its seconds per generated token, and scales
them to the run's sizes; a stage the run finds in its cache costs nothing. `plan.model` runs the pilot on a
stand-in model on this machine, and `plan.throughput` (a YAML table the user measured on the target hardware)
turns its token counts into time there. docs/planning.md.
"""

from __future__ import annotations

import atexit
import logging
import math
import statistics
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from s2d import cache, config as s2d_config  # the config module registers the typed schema
from s2d.artifacts import is_done, mark_done, read_json, read_jsonl, safe_child, stage_lock, write_json
from s2d.console import quiet_library_noise
from s2d.training.fit import peak_rss_gib
from s2d.training.memory import check_fits

log = logging.getLogger("s2d.plan")

EVAL_SYSTEMS = ("system1", "system2", "distilled", "routed")
CONF = Path(__file__).resolve().parents[1] / "conf"


# ---- the pilot ----------------------------------------------------------------------------------------------

class StepTimer(pl.Callback):
    """Wall seconds and pairs of each optimizer step, written to `<trainer root>/step_seconds.json` when training
    ends as `[{"seconds": s, "pairs": b}, ...]`. The pairs matter: a pilot's epochs end in a part-filled batch that
    a larger run's do not, so a step's time is scaled by its pairs (`step_model`). Added to the pilot's
    `train.extra_callbacks`, which stage keys leave out, so it changes no record."""

    def __init__(self):
        self.steps: list[dict] = []
        self._t0 = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({"seconds": time.perf_counter() - self._t0, "pairs": int(len(batch["input_ids"]))})

    def on_train_end(self, trainer, pl_module) -> None:
        write_json(Path(trainer.default_root_dir) / "step_seconds.json", self.steps)


def step_model(steps: list[dict]) -> tuple[float, tuple[float, float, float]]:
    """A step's seconds as `fixed + per_pair × pairs`, fitted to the pilot's timed steps (the first one, which also
    warms up, left out where others exist): least squares where the steps hold two batch sizes or more, else all
    of a step's time per pair. Returns (fixed, (per_pair, low, high)): the median step's cost per pair, and the
    cheapest and dearest step's (the warm-up step counts for the dearest), so a noisy machine widens the range."""
    later = steps[1:] or steps
    xs = [float(s["pairs"]) for s in later]
    ys = [float(s["seconds"]) for s in later]
    fixed = 0.0
    if len(set(xs)) >= 2:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        fixed = my - slope * mx
        if slope <= 0 or fixed < 0:  # noise beat the signal: fall back to time per pair
            fixed = 0.0
    per_pair = [(y - fixed) / x for x, y in zip(xs, ys)]
    mid = statistics.median(per_pair)
    high = max([*per_pair, (float(steps[0]["seconds"]) - fixed) / float(steps[0]["pairs"])])
    return fixed, (mid, min(per_pair), high)


def task_sizes(cfg: DictConfig) -> tuple[int | None, int | None]:
    """(train inputs, eval items) the configured task makes: counted from its examples where that needs no model
    (a pair task judges each pair in both orders), else None."""
    from s2d.stages.inputs import task_needs_model

    task = instantiate(cfg.task)
    if task_needs_model(task):
        return None, None
    return len(task.train_examples()), len(task.eval_examples())


def compose_option(overrides: list[str]) -> DictConfig:
    """The primary config under `overrides` (to take a stand-in's model, backend and trainer nodes)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def batch_fill(cfg: DictConfig, samples: int, chunk: int) -> int:
    """Inputs that fill one batch of the run: a chunk of `chunk` inputs × `samples` sequences, at most the
    backend's `batch_size` sequences where it has one (a vLLM engine takes the whole chunk)."""
    sequences = chunk * samples
    if cfg.backend.get("batch_size"):
        sequences = min(sequences, int(cfg.backend.batch_size))
    return math.ceil(sequences / max(1, samples))


def pilot_config(cfg: DictConfig) -> DictConfig:
    """The cell at pilot size: task.n_train / task.n_eval at most plan.n_train / plan.n_eval (raised to fill one
    batch of the run, `plan.fill_batch`, where the pilot runs the run's own model), no logger, a cell that
    keeps nothing is a result, and each training step timed; on the stand-in model and backend if plan.model is set."""
    pilot = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(pilot, False)
    fill = {}
    if cfg.plan.get("fill_batch", True) and not cfg.plan.model:
        # Rates measured here scale to the run only at the run's batch fill (on this CPU, 48 sequences at once
        # generated 75 tokens/s where the run's 128 did 280): the pilot fills one batch where its sizes allow.
        fill = {"n_train": batch_fill(cfg, int(cfg.generate.n), int(cfg.generate.chunk_size)),
                "n_eval": batch_fill(cfg, int(cfg.eval.k), int(cfg.eval.chunk_size))}
    for key, size in (("n_train", cfg.plan.n_train), ("n_eval", cfg.plan.n_eval)):
        if key in cfg.task:
            have, size = cfg.task[key], max(int(size), fill.get(key, 0))
            pilot.task[key] = size if have is None else min(int(have), size)
    if cfg.plan.model:
        stand_in = compose_option([f"model={cfg.plan.model}", f"backend={cfg.plan.backend or 'hf'}"])
        pilot.model = OmegaConf.to_container(stand_in.model, resolve=False)
        pilot.backend = OmegaConf.to_container(stand_in.backend, resolve=False)
        # The run's schedule (epochs, steps) on this machine's CPU trainer.
        pilot.train.trainer.update({k: stand_in.train.trainer[k] for k in
                                    ("accelerator", "devices", "num_nodes", "strategy", "precision")})
        pilot.train.dtype = "float32"  # the stand-in trains on this machine's CPU
    pilot.logger = {"_target_": "s2d.tracking.NoTracker"}
    pilot.on_nothing_to_distill = "skip"
    pilot.generate.num_shards, pilot.generate.shard_id = 1, None
    pilot.paths.output_dir = str(Path(cfg.paths.output_dir) / "pilot")
    pilot.train.extra_callbacks = [*(pilot.train.get("extra_callbacks") or []), {"_target_": "s2d.plan.StepTimer"}]
    return pilot


def pilot_record_dir(cfg: DictConfig, pilot: DictConfig) -> Path:
    return safe_child(Path(cfg.paths.cache_dir), "plan", cache.run_key(pilot))


def run_pilot(cfg: DictConfig) -> dict:
    """The pilot's stages (reused when cached) and its record: the stage directories and the wall seconds of each
    stage, of loading the model (and of building it, for a model organism not built yet)."""
    from s2d.organism import Organism
    from s2d.stages import evaluate, filter as filter_stage, generate, inputs, route, train
    from s2d.tracking import NoTracker
    from s2d.types import Sampling

    pilot = pilot_config(cfg)
    out = pilot_record_dir(cfg, pilot)
    if is_done(out):
        return read_json(out / "DONE.json")
    out.mkdir(parents=True, exist_ok=True)
    with stage_lock(out):
        if is_done(out):
            return read_json(out / "DONE.json")
        source = instantiate(pilot.model)
        unbuilt = isinstance(source, Organism) and not is_done(source.directory)
        seconds: dict[str, float] = {}
        llm = instantiate(pilot.backend)

        reused: list[str] = []

        def timed(name, fn, *args):
            t0, started = time.perf_counter(), time.time()
            result = fn(*args)
            seconds[name] = time.perf_counter() - t0
            if isinstance(result, (str, Path)) and (Path(result) / "DONE.json").stat().st_mtime < started:
                reused.append(name)  # another pilot (a cell of the same sweep) made it: its time is in that record
            return result

        # Load (and build) the model apart from the stages, so their seconds are generation alone.
        timed("load", llm.generate, ["Hi"], Sampling(max_new_tokens=1), "plan: load")
        if unbuilt:  # the first load built it: its training is its own figure, the rest is the load
            seconds["build"] = read_json(source.directory / "DONE.json")["seconds"]
            seconds["load"] = max(0.0, seconds["load"] - seconds["build"])
        dirs: dict = {}
        drafted = timed("inputs", inputs.run, pilot, llm)
        if drafted is not None:
            dirs["inputs"] = str(drafted)
        gen = timed("generate", generate.run, pilot, llm)
        flt = timed("filter", filter_stage.run, pilot, gen, llm)
        trained = timed("train", train.run, pilot, flt, NoTracker(), llm.release)
        dirs.update(generate=str(gen), filter=str(flt), train=str(trained))
        task = inputs.load_task(pilot, llm)
        samp = s2d_config.sampling(pilot.eval, pilot.seed)
        train_info = read_json(trained / "DONE.json")
        for system in pilot.eval.systems:
            if system in ("distilled", "routed") and not train_info.get("trained"):
                continue
            # one system at a time (the stage's own per-system step), so each has its own time
            d = timed(system, route.system_dir, pilot, task, llm, trained, samp) if system == "routed" else \
                timed(system, evaluate.system_dir, pilot, system, task, llm, trained, samp)
            dirs[f"evaluate/{system}"] = str(d)
        llm.release()
        return mark_done(out, {"stage": "plan-pilot", "dirs": dirs, "seconds": seconds, "reused": reused,
                               "peak_rss_gib": peak_rss_gib(), "built_model": unbuilt})


# ---- from records to estimates -------------------------------------------------------------------------------

def spread(values: list[float], n_real: int, z: float) -> tuple[float, float, float]:
    """Total over `n_real` units from a sample of per-unit values: (estimate, low, high) with the mean ± z
    standard errors (a sample of one has no spread: its value is taken as exact)."""
    if not values:
        return 0.0, 0.0, 0.0
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return n_real * mean, n_real * max(0.0, mean - z * se), n_real * (mean + z * se)


def per_input(path: Path, field: str = "completion_tokens") -> dict[str, float]:
    """Generated tokens per input of a traces.jsonl (every sample, every call)."""
    out: dict[str, float] = defaultdict(float)
    for row in read_jsonl(path):
        out[row["example_id"]] += sum(c[field] for c in row["calls"])
    return out


def bytes_per_input(d: Path) -> dict[str, float]:
    """Bytes of a stage directory's per-input records (jsonl rows with an example_id), per input."""
    out: dict[str, float] = defaultdict(float)
    for f in d.glob("*.jsonl"):
        with open(f, "rb") as fh:
            for line in fh:
                key = line.find(b'"example_id": "')
                if key < 0:
                    continue
                start = key + len(b'"example_id": "')
                out[line[start:line.index(b'"', start)].decode()] += len(line)
    return out


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file())


def load_throughput(path: str | None) -> dict | None:
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"plan.throughput={path}: no such file; its format is in docs/planning.md")
    table = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
    for row in table.get("generate", []):
        missing = {"model", "backend", "batch", "tokens_per_s"} - set(row)
        if missing:
            raise ValueError(f"plan.throughput={path}: a generate row lacks {sorted(missing)}: {row}")
    for row in table.get("train", []):
        missing = {"model", "batch_size", "seconds_per_step"} - set(row)
        if missing:
            raise ValueError(f"plan.throughput={path}: a train row lacks {sorted(missing)}: {row}")
    return table


def backend_name(cfg: DictConfig) -> str:
    return str(cfg.backend._target_).rsplit(".", 2)[-2]  # s2d.llm.vllm.VLLMBackend → vllm


def table_rate(table: dict, cfg: DictConfig, sequences: int) -> float | None:
    """Generated tokens per second the table gives for the run's model and backend with `sequences` in flight:
    linear between the two measured batch sizes around it, the nearest one outside them."""
    rows = sorted((r for r in table.get("generate", []) if r["model"] == cfg.model.name
                   and r["backend"] == backend_name(cfg)), key=lambda r: r["batch"])
    if not rows:
        raise ValueError(f"plan.throughput: no generate row for model {cfg.model.name} with backend "
                         f"{backend_name(cfg)}; add one (docs/planning.md)")
    cap = int(cfg.backend.get("batch_size") or sequences)
    b = max(1, min(sequences, cap))
    if b <= rows[0]["batch"]:
        return float(rows[0]["tokens_per_s"])
    for lo, hi in zip(rows, rows[1:]):
        if b <= hi["batch"]:
            w = (b - lo["batch"]) / (hi["batch"] - lo["batch"])
            return float(lo["tokens_per_s"] + w * (hi["tokens_per_s"] - lo["tokens_per_s"]))
    return float(rows[-1]["tokens_per_s"])


def table_step(table: dict, cfg: DictConfig) -> float | None:
    rows = [r for r in table.get("train", []) if r["model"] == cfg.model.name]
    if not rows:
        return None
    best = min(rows, key=lambda r: abs(r["batch_size"] - cfg.train.batch_size))
    return float(best["seconds_per_step"]) * cfg.train.batch_size / best["batch_size"]


def real_dirs(cfg: DictConfig) -> dict[str, Path | None]:
    """The run's own stage directories where they are finished (None where not): cached stages cost nothing.
    Nothing is created: a key whose upstream is not finished is not known yet, so that stage is not cached."""
    from s2d.stages import evaluate, route

    root = Path(cfg.paths.cache_dir)

    def done(stage, key):
        d = safe_child(root, stage, key)
        return d if is_done(d) else None

    out: dict[str, Path | None] = {}
    keys: dict[str, str | None] = {"generate": cache.generate_key(cfg)}
    keys["filter"] = cache.filter_key(cfg, keys["generate"])
    out["generate"] = done("generate", keys["generate"])
    out["filter"] = done("filter", keys["filter"]) if out["generate"] else None
    keys["train"] = cache.train_key(cfg, cache.targets_digest(out["filter"])) if out["filter"] else None
    out["train"] = done("train", keys["train"]) if keys["train"] else None
    for s in cfg.eval.systems:
        needs_train = s in ("distilled", "routed")
        train = out["train"].name if out["train"] else ""
        keys[s] = (route.system_key(cfg, train) if s == "routed" else evaluate.system_key(cfg, s, train)) \
            if (out["train"] or not needs_train) else None
        out[s] = done("evaluate", keys[s]) if keys[s] else None
    out["keys"] = keys  # type: ignore[assignment]  (a sweep's total counts a stage its cells share once)
    return out


def timed_elsewhere(cfg: DictConfig, name: str, d: str) -> float | None:
    """The seconds of a pilot stage that another pilot made (a stage two cells share), from that pilot's record."""
    for f in sorted((Path(cfg.paths.cache_dir) / "plan").glob("*/DONE.json")):
        other = read_json(f)
        if other.get("dirs", {}).get(f"evaluate/{name}", other.get("dirs", {}).get(name)) == d \
                and name not in other.get("reused", []):
            return other["seconds"].get(name)
    return None


def estimate(cfg: DictConfig, record: dict, n_train: int | None, n_eval: int | None) -> dict:
    """The cell's plan from a pilot record: per stage tokens, seconds and bytes, each (estimate, low, high)."""
    z = float(cfg.plan.z)
    table = load_throughput(cfg.plan.throughput)
    dirs = {k: Path(v) for k, v in record["dirs"].items()}
    secs = dict(record["seconds"])
    for name in record.get("reused", []):
        d = record["dirs"].get(f"evaluate/{name}", record["dirs"].get(name))
        found = timed_elsewhere(cfg, name, d) if d else None
        if found is not None:
            secs[name] = found
    # A pilot stage found finished by something other than a pilot (a run at the pilot's size) has no time of its
    # own: it takes the generate stage's seconds per token (the same model and backend).
    untimed = {n for n in record.get("reused", []) if secs.get(n) == record["seconds"].get(n)}
    fallback = None
    if "generate" not in untimed:
        fallback = secs.get("generate", 0.0) / max(1.0, sum(per_input(dirs["generate"] / "traces.jsonl").values()))
    cached = real_dirs(cfg)
    keys = cached.pop("keys")
    # A pilot as large as the run (plan.fill_batch on a small run) made the run's own stages: they are shown as
    # measured, not as free, and the run reuses them.
    def pilot_dir(name: str) -> Path | None:
        return dirs.get(name) or dirs.get(f"evaluate/{name}")

    own = {name for name, d in cached.items() if d is not None
           and (mine := pilot_dir(name)) is not None and Path(d).resolve() == Path(mine).resolve()}
    for name in own:
        cached[name] = None
    trained = read_json(dirs["train"] / "DONE.json").get("trained")
    # Training releases the base model: the first base-model evaluation after it loads it again.
    reloads = {"distilled", "routed"} | ({next((s for s in cfg.eval.systems if s in ("system1", "system2")), "")}
                                         if trained else set())
    pilot_inputs = len(read_jsonl(dirs["generate"] / "examples.jsonl"))
    n_train = n_train if n_train is not None else pilot_inputs
    stages: dict[str, dict] = {}

    def generation(name: str, d: Path, n_real: int, samples: int, traces: str = "traces.jsonl"):
        tokens = per_input(d / traces)
        n_pilot = len(tokens)
        est = spread(list(tokens.values()), n_real, z)
        pilot_tokens = sum(tokens.values())
        if table is not None:
            rate = table_rate(table, cfg, n_real * samples)
            per_token = 1.0 / rate
            source = f"throughput table ({rate:.0f} tokens/s)"
        load = secs.get("load", 0.0) if name in reloads or name == "generate" else 0.0  # an engine starts
        if table is not None and load:
            load = float((table.get("load_s") or {}).get(cfg.model.name, 0.0))
        if table is None and name in untimed and fallback is not None:
            per_token, source = fallback, "the pilot's generate stage (this stage was already cached)"
        elif table is None:
            busy = max(1e-9, secs.get(name, 0.0) - (load if name != "generate" else 0.0))
            per_token = busy / max(1.0, pilot_tokens)
            source = f"pilot ({pilot_tokens / busy:.0f} tokens/s)"
        by_bytes = spread(list(bytes_per_input(d).values()), n_real, z)
        stages[name] = {"units": n_real, "pilot_units": n_pilot, "tokens": est,
                        "seconds": tuple(load + t * per_token for t in est), "time_from": source,
                        "bytes": by_bytes, "key": keys.get(name)}

    if cached["generate"]:
        stages["generate"] = {"cached": True}
    else:
        generation("generate", dirs["generate"], n_train, int(cfg.generate.n))
    filter_info = read_json(dirs["filter"] / "DONE.json")
    seen, kept = filter_info["filter/seen"], filter_info["filter/kept"]
    if "inputs" in dirs:
        # Task inputs the model helps write (TriviaQA's opinions, S2A's probe): how many requests the run makes
        # depends on the task (a probe pool, not n_train), so the pilot's own count is shown, not scaled.
        rows = read_jsonl(dirs["inputs"] / "drafts.jsonl")
        t = float(sum(r.get("completion_tokens", 0) for r in rows))
        stages["inputs"] = {"units": len(rows), "tokens": (t, t, t), "seconds": (secs.get("inputs", 0.0),) * 3,
                            "bytes": (float(dir_bytes(dirs["inputs"])),) * 3,
                            "note": "the pilot's requests, not scaled: their number depends on the task"}
    if cached["filter"]:
        stages["filter"] = {"cached": True}
    else:
        scale = n_train / max(1, pilot_inputs)
        calls = [c for f in dirs["filter"].glob("*_calls.jsonl") for c in read_jsonl(f)]  # a filter's model calls
        stages["filter"] = {"units": n_train, "seconds": (secs.get("filter", 0.0) * scale,) * 3, "key": keys["filter"]}
        if calls:
            tokens = spread([float(c["completion_tokens"]) for c in calls], round(len(calls) * scale), z)
            per_token = secs.get("filter", 0.0) / max(1.0, sum(c["completion_tokens"] for c in calls))
            stages["filter"].update(tokens=tokens, seconds=tuple(t * per_token for t in tokens))
    stages["train"] = {"cached": True} if cached["train"] else train_estimate(cfg, dirs["train"], secs, seen, kept,
                                                                                n_train, z, table)
    n_eval_pilot = next((len(per_input(d / "traces.jsonl")) for k, d in sorted(dirs.items())
                         if k.startswith("evaluate/") and (d / "traces.jsonl").exists()), None)
    for system in cfg.eval.systems:
        d = dirs.get(f"evaluate/{system}")
        if cached.get(system):
            stages[system] = {"cached": True}
        elif system in ("distilled", "routed") and cached["train"] \
                and not read_json(cached["train"] / "DONE.json").get("trained"):
            stages[system] = {"skipped": "the run's filter kept no input, so there is no distilled model"}
        elif d is None:
            stages[system] = {"skipped": "the pilot's filter kept no input, so it trained no model"}
        else:
            n_eval_pilot = len(per_input(d / "traces.jsonl"))
            samples = int(cfg.eval.route.k) + 1 if system == "routed" else int(cfg.eval.k)
            generation(system, d, n_eval if n_eval is not None else n_eval_pilot, samples)
    routed, distilled = stages.get("routed", {}), stages.get("distilled", {})
    if "tokens" in routed and "tokens" in distilled and "routed" not in own:
        # How many inputs the run routes to System 2 depends on how sure the run's distilled model is, and the
        # pilot's, trained on a few pairs, is less sure: the range reaches down to routing none.
        routed["tokens"] = (routed["tokens"][0], min(routed["tokens"][1], distilled["tokens"][1]), routed["tokens"][2])
        if "seconds" in routed and "seconds" in distilled:
            routed["seconds"] = (routed["seconds"][0], min(routed["seconds"][1], distilled["seconds"][1]),
                                 routed["seconds"][2])
        routed["note"] = "its share routed to System 2 is the pilot model's; the range runs down to none routed"
    for name in own & set(stages):
        s, d = stages[name], pilot_dir(name)
        if "tokens" in s and (d / "traces.jsonl").exists():
            s["tokens"] = (float(sum(per_input(d / "traces.jsonl").values())),) * 3
        if name == "train":
            info = read_json(d / "DONE.json")
            s.update(pairs=(float(kept),) * 3, steps=(int(info.get("steps", 0)),) * 3)
        if "seconds" in s:
            s["seconds"] = (secs.get(name, s["seconds"][0]),) * 3
        s["note"] = "the pilot ran it at the run's size: measured, and the run reuses it"
    total = [sum(s.get(k, (0, 0, 0))[i] for s in stages.values()) for k in ("tokens", "seconds", "bytes")
             for i in range(3)]
    peak = max(record.get("peak_rss_gib") or 0.0, read_json(dirs["train"] / "DONE.json").get("peak_rss_gib") or 0.0)
    return {"cell": cell_names(cfg), "stages": stages, "pilot": {"train": pilot_inputs, "eval": n_eval_pilot},
            "run": {"train": n_train, "eval": n_eval}, "build": secs.get("build") if record.get("built_model") else None,
            "load_s": secs.get("load"),
            "total": {"tokens": tuple(total[0:3]), "seconds": tuple(total[3:6]), "bytes": tuple(total[6:9])},
            "peak_rss_gib": peak, "z": z, "stand_in": cfg.plan.model, "throughput": cfg.plan.throughput}


def train_estimate(cfg: DictConfig, d: Path, secs: dict, seen: int, kept: int, n_train: int, z: float,
                   table: dict | None) -> dict:
    """Pairs from the pilot's filter yield (its Wilson interval), steps from the run's batches and epochs, seconds
    per step from the pilot's timed steps (median, range over them), and the model's size on disk."""
    from s2d.stats import wilson

    info = read_json(d / "DONE.json")
    y = kept / max(1, seen)
    lo, hi = wilson(kept, seen) if seen else (0.0, 0.0)
    pairs = (n_train * y, n_train * lo, n_train * hi)
    world = (int(cfg.train.trainer.devices) if cfg.train.trainer.accelerator in ("gpu", "cuda") else 1) \
        * int(cfg.train.trainer.get("num_nodes", 1))
    max_steps = int(cfg.train.trainer.get("max_steps", -1) or -1)
    epochs = int(cfg.train.trainer.max_epochs)

    def steps(p: float) -> int:
        s = math.ceil(round(p) / (int(cfg.train.batch_size) * world)) * epochs
        return min(s, max_steps) if max_steps > 0 else s

    n_steps = tuple(steps(p) for p in pairs)
    if not info.get("trained"):
        return {"pairs": pairs, "steps": n_steps, "seconds": (0.0, 0.0, 0.0), "bytes": (0, 0, 0),
                "note": "the pilot trained nothing (its filter kept no input): no time per step measured"}
    timed = read_json(d / "step_seconds.json") if (d / "step_seconds.json").exists() else []
    if not timed or not isinstance(timed[0], dict):  # a pilot timed before steps recorded their pairs
        timed = [{"seconds": float(s), "pairs": int(cfg.train.batch_size)} for s in timed] or \
            [{"seconds": info["seconds_per_step"], "pairs": int(cfg.train.batch_size)}]
    fixed, per_pair = step_model(timed)
    batch = int(cfg.train.batch_size)

    def run_seconds(p: float, n: int, rate: float) -> float:
        # every pair of every epoch once, plus each step's fixed cost; a run capped by max_steps stops early
        done = min(round(p) * epochs, n * batch * world)
        return n * fixed + done / world * rate

    per_step = fixed + batch * per_pair[0]
    from_table = table_step(table, cfg) if table is not None else None
    if from_table is not None:
        per_step, fixed, per_pair = from_table, 0.0, (from_table / batch,) * 3
    overhead = max(0.0, secs.get("train", 0.0) - info["seconds"])  # load, save
    model_bytes = dir_bytes(d / "model")
    lora = cfg.train.get("lora")
    params_b = cfg.model.get("num_parameters_b") if "num_parameters_b" in cfg.model else None
    if cfg.plan.model and params_b and not (lora and not lora.merge_on_save):
        # The stand-in's model is not the run's: a saved full (or merged) model holds every weight in train.dtype.
        from s2d.training.memory import DTYPE_BYTES

        model_bytes = float(params_b) * 1e9 * DTYPE_BYTES[str(cfg.train.dtype)]
    if cfg.plan.model and from_table is None:
        # The stand-in's steps on this CPU say nothing about the run's model on its hardware.
        return {"pairs": pairs, "steps": n_steps, "bytes": (model_bytes,) * 3,
                "note": f"time not estimated: no train row for {cfg.model.name} in plan.throughput, and the "
                        "stand-in's steps here do not time the run's model"}
    seconds = tuple(overhead + run_seconds(p, n, rate) for p, n, rate in zip(pairs, n_steps, per_pair))
    return {"pairs": pairs, "steps": n_steps, "seconds": seconds, "bytes": (model_bytes,) * 3,
            "seconds_per_step": per_step}


def cell_names(cfg: DictConfig) -> dict:
    return {"method": instantiate(cfg.method).name, "task": instantiate(cfg.task).name,
            "filter": instantiate(cfg.filter).name, "model": cfg.model.name,
            "backend": backend_name(cfg)}


def plan(cfg: DictConfig, run_pilot_if_needed: bool = True) -> dict | None:
    """The cell's plan: refused (check_fits) where the model does not fit its training; else from the pilot
    (run now if `run_pilot_if_needed`, else None when it is not cached)."""
    try:
        need = check_fits(cfg)
    except ValueError as e:
        return {"cell": cell_names(cfg), "does_not_fit": str(e)}
    pilot = pilot_config(cfg)
    out = pilot_record_dir(cfg, pilot)
    if is_done(out):
        record = read_json(out / "DONE.json")
    elif run_pilot_if_needed:
        record = run_pilot(cfg)
    else:
        return None
    n_train, n_eval = task_sizes(cfg)
    result = estimate(cfg, record, n_train, n_eval)
    result["training_memory_gib"] = need
    return result


# ---- printing ------------------------------------------------------------------------------------------------

def fmt_s(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_b(b: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def rng(v: tuple, f) -> str:
    return f"{f(v[0])} [{f(v[1])}–{f(v[2])}]"


def tok(t: float) -> str:
    return f"{t:,.0f}"


def render(p: dict) -> str:
    c = p["cell"]
    head = f"plan  method={c['method']}  task={c['task']}  filter={c['filter']}  model={c['model']}  backend={c['backend']}"
    if "does_not_fit" in p:
        return f"{head}\n  does not fit, so no estimate: {p['does_not_fit']}"
    lines = [head, f"  estimate from a pilot of {p['pilot']['train']} train inputs and {p['pilot']['eval']} eval items "
                   f"(run: {p['run']['train']} and {p['run']['eval']}); [low–high]: the pilot's mean ± {p.get('z', 2)} "
                   "standard errors"]
    if p.get("stand_in"):
        lines.append(f"  tokens per call measured on the stand-in model {p['stand_in']}, not the run's model")
    if p.get("throughput"):
        lines.append(f"  time from the throughput table {p['throughput']}, not measured here")
    if p.get("build") is not None:
        lines.append(f"  model build: {fmt_s(p['build'])}, measured by the pilot (cached now: the run reuses it)")
    lines.append(f"  {'stage':<10}{'inputs':>8}  {'generated tokens':<36} {'time':<33} disk")
    for name, s in p["stages"].items():
        if s.get("cached"):
            lines.append(f"  {name:<10}{'':>8}  cached: costs nothing")
        elif "skipped" in s:
            lines.append(f"  {name:<10}{'':>8}  not estimated: {s['skipped']}")
        elif name == "train":
            what = f"{rng(s['pairs'], tok)} pairs, {rng(s['steps'], tok)} steps"
            when = rng(s['seconds'], fmt_s) if "seconds" in s else "—"
            lines.append(f"  {name:<10}{'':>8}  {what:<36} {when:<33} {fmt_b(s['bytes'][0])}"
                         + (f"  ({s['note']})" if s.get("note") else ""))
        elif name == "filter" and "tokens" not in s:
            lines.append(f"  {name:<10}{s['units']:>8}  {'—':<36} {fmt_s(s['seconds'][0]):<33} ")
        else:
            lines.append(f"  {name:<10}{s['units']:>8}  {rng(s['tokens'], tok):<36} {rng(s['seconds'], fmt_s):<33} "
                         f"{fmt_b(s.get('bytes', (0,))[0])}" + (f"  ({s['note']})" if s.get("note") else ""))
    t = p["total"]
    left_out = untimed_stages(p)
    lines.append(f"  {'total':<10}{'':>8}  {rng(t['tokens'], tok):<36} {rng(t['seconds'], fmt_s):<33} "
                 f"{fmt_b(t['bytes'][0])}" + (f"  (time without {', '.join(left_out)})" if left_out else ""))
    mem = f"  peak memory: at least {p['peak_rss_gib']:.1f} GiB (the pilot's peak RSS; larger batches hold more)"
    if p.get("training_memory_gib"):
        mem += f"; training needs about {p['training_memory_gib']['per_device']:.0f} GiB per device (check_fits)"
    lines.append(mem)
    return "\n".join(lines)


def untimed_stages(p: dict) -> list[str]:
    """The plan's stages that cost something but have no time estimate (a stand-in's training without a table
    row): the total's time leaves them out."""
    return [name for name, s in p.get("stages", {}).items()
            if not s.get("cached") and "skipped" not in s and "seconds" not in s]


def one_line(p: dict) -> str:
    """The summary a real run prints first."""
    if "does_not_fit" in p:
        return "plan: " + p["does_not_fit"]
    t = p["total"]
    return (f"plan: this cell ~{rng(t['tokens'], tok)} generated tokens, ~{rng(t['seconds'], fmt_s)} "
            f"(pilot of {p['pilot']['train']} inputs; python -m s2d.plan for the stages)")


# ---- inside a real run ---------------------------------------------------------------------------------------

def announce(cfg: DictConfig) -> dict:
    """At the start of a real run: the cell's one-line plan where its pilot is cached (nothing is run for it).
    Returns {stage: (estimate, low, high) seconds} for the progress lines."""
    if not cfg.plan.announce:
        return {}
    p = plan(cfg, run_pilot_if_needed=False)
    if p is None:
        log.info("plan: no pilot cached for this cell; python -m s2d.plan with the same overrides estimates it")
        return {}
    log.info("%s", one_line(p))
    stages = p.get("stages", {})
    out = {name: s["seconds"] for name, s in stages.items() if "seconds" in s}
    evals = [s["seconds"] for name, s in stages.items() if name in EVAL_SYSTEMS and "seconds" in s]
    if evals:
        out["evaluate"] = tuple(sum(s[i] for s in evals) for i in range(3))
    return out


@contextmanager
def progress(stage: str, estimates: dict, every_s: float):
    """Logs `elapsed vs estimate` every `every_s` seconds while a stage with an estimate runs."""
    est = estimates.get(stage)
    if not est or every_s <= 0 or est[0] < every_s:
        yield
        return
    stop = threading.Event()
    t0 = time.perf_counter()

    def beat():
        while not stop.wait(every_s):
            log.info("%s: %s elapsed, estimate %s", stage, fmt_s(time.perf_counter() - t0), rng(est, fmt_s))

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ---- command line ---------------------------------------------------------------------------------------------

_PLANS: list[dict] = []


def sweep_total(plans: list[dict]) -> dict:
    """The sweep's tokens, seconds and bytes: a stage two cells share (the same stage key, e.g. System 1's
    evaluation of one task under several methods) counted once."""
    seen: set = set()
    total = {k: [0.0, 0.0, 0.0] for k in ("tokens", "seconds", "bytes")}
    for p in plans:
        for name, stage in p.get("stages", {}).items():
            key = stage.get("key")
            if key is not None:
                ident = ("evaluate" if name in EVAL_SYSTEMS else name, key)
                if ident in seen:
                    continue
                seen.add(ident)
            for k in total:
                for i, v in enumerate(stage.get(k, (0, 0, 0))):
                    total[k][i] += v
    return {k: tuple(v) for k, v in total.items()}


def print_total() -> None:
    if len(_PLANS) < 2:
        return
    refused = sum("does_not_fit" in p for p in _PLANS)
    cells_untimed = sum(bool(untimed_stages(p)) for p in _PLANS)
    t = sweep_total(_PLANS)
    print(f"sweep: {len(_PLANS)} cells ({refused} not estimated: they do not fit); ~{rng(t['tokens'], tok)} "
          f"generated tokens, ~{rng(t['seconds'], fmt_s)}, {fmt_b(t['bytes'][0])} on disk (a stage cells share "
          "counted once)" + (f"; the time leaves out a stage of {cells_untimed} cells that has none"
                             if cells_untimed else ""))


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    quiet_library_noise()
    s2d_config.check(cfg)
    p = plan(cfg)
    print(render(p))
    write_json(Path(cfg.paths.output_dir) / "plan.json", p)
    if not _PLANS:
        atexit.register(print_total)
    _PLANS.append(p)


if __name__ == "__main__":
    main()
