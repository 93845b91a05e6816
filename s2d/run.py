"""Entry point: `python -m s2d.run [overrides]` runs generate → filter → train → evaluate → report."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from s2d import cache, config as s2d_config, plan
from s2d.artifacts import read_json_or_none, write_json
from s2d.console import quiet_library_noise
from s2d.llm.base import before_training
from s2d.distributed import LEAD_STALE_S, LeadHeartbeat, LeadWatch, launched_world_size, process_rank
from s2d.stages import evaluate, filter as filter_stage, generate, inputs, report, route, train
from s2d.tracking import NoTracker
from s2d.training.memory import check_fits

log = logging.getLogger("s2d")

class NothingToDistill(RuntimeError):
    pass


def cell_of(cfg: DictConfig) -> dict:
    """The names that identify this run among the cells of a sweep."""
    return {"method": instantiate(cfg.method).name, "task": instantiate(cfg.task).name,
            "filter": instantiate(cfg.filter).name, "model": cfg.model.name, "target": cfg.target,
            "distill_from": cfg.distill_from}


def sweep_name() -> str | None:
    """In a multirun, the sweep's directory name groups its cells (in W&B and in reports)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir).name


def link_stages(run_dir: Path, dirs: dict) -> None:
    """run_dir/<stage> points into the shared stage cache, so a run reads like a self-contained directory."""
    links = {k: v for k, v in dirs.items() if k != "evaluate"}
    links.update({f"evaluate-{s}": d for s, d in dirs.get("evaluate", {}).items()})
    for name, target in links.items():
        link = run_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(target).resolve(), target_is_directory=True)


def lead_heartbeat_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.cache_dir) / "runs" / f"{cache.run_key(cfg)}.lead"


def follow(cfg: DictConfig, poll_seconds: float = 10.0, stale_s: float = LEAD_STALE_S) -> dict:
    """A data-parallel follower: wait until the lead process (rank 0) has generated and filtered, join the
    distributed training, and leave evaluation and reporting to the lead. Stops with an error when the lead
    reports a failure or gives no sign of life for `stale_s` seconds, instead of waiting forever."""
    from s2d.artifacts import is_done
    from s2d.stages import stage_dir

    gen_key = cache.generate_key(cfg)
    filter_dir = stage_dir(cfg, "filter", cache.filter_key(cfg, gen_key))
    log.info("rank %d: waiting for the lead process to finish %s", process_rank(), filter_dir)
    watch = LeadWatch(lead_heartbeat_path(cfg), stale_s)
    while not is_done(filter_dir):
        gone = watch.gone()
        if gone:
            raise RuntimeError(f"rank {process_rank()}: {gone}, while waiting for its filtered data ({filter_dir}); "
                               "this process stops instead of waiting forever. The lead's log says what happened; "
                               "the same command resumes after the last finished stage")
        time.sleep(poll_seconds)
    train.run(cfg, filter_dir, NoTracker())  # Lightning's loggers write from rank 0 only anyway
    log.info("rank %d: training done; evaluation runs on rank 0", process_rank())
    return {}


def ddp_children_run_this_cell(cfg: DictConfig) -> None:
    """Under a multirun, Lightning's DDP launcher starts each training process with this process's argv and
    Hydra's run dir: with `-m` and the sweep's lists that child would run the whole sweep again. Point both at
    this cell alone (its overrides, its output directory)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    hydra_cfg = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg.run), open_dict(hydra_cfg.run):
        hydra_cfg.run.dir = str(cfg.paths.output_dir)


def run(cfg: DictConfig) -> dict:
    """The whole loop on one config; returns the metrics also written to metrics.json."""
    s2d_config.check(cfg)
    check_fits(cfg)  # a model its trainer cannot hold fails now, not after hours of generation
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if process_rank() > 0:
        return follow(cfg)
    # Followers started beside this process (SLURM tasks, torchrun) wait for its data; they watch this beat.
    heartbeat = LeadHeartbeat(lead_heartbeat_path(cfg)).start() if launched_world_size() > 1 else None
    ok = False
    try:
        metrics = run_as_lead(cfg, run_dir)
        ok = True
        return metrics
    finally:
        if heartbeat is not None:
            heartbeat.stop(ok)


def run_as_lead(cfg: DictConfig, run_dir: Path) -> dict:
    """The loop as the lead process (rank 0, or the only one) runs it."""
    if cfg.generate.shard_id is not None:
        # One shard of data-parallel generation: the later stages run once, in the run that joins the shards.
        d = generate.run(cfg)
        log.info("generate shard %s of %s done: %s", cfg.generate.shard_id, cfg.generate.num_shards, d)
        return {}
    cell = cell_of(cfg)
    tracker = instantiate(cfg.logger)
    # A cell that did not finish (killed, or failed) continues its W&B run when started again.
    state_path = Path(cfg.paths.cache_dir) / "runs" / f"{cache.run_key(cfg)}.json"
    state = read_json_or_none(state_path) or {}
    resume_id = state.get("wandb_id") if state.get("status") == "running" else None
    tracker.start(OmegaConf.to_container(cfg, resolve=True), run_dir, tags=[cell["method"], cell["task"], cell["model"]],
                  group=sweep_name(), run_id=resume_id)
    if tracker.run_id:
        write_json(state_path, {"wandb_id": tracker.run_id, "status": "running", "run_dir": str(run_dir)})
    ok = False
    dirs: dict = {}
    timings: dict[str, float] = {}

    estimates = plan.announce(cfg)  # this cell's one-line plan, where its pilot is cached (python -m s2d.plan)

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        with plan.progress(name, estimates, float(cfg.plan.progress_s)):
            result = fn(*args)
        timings[name] = time.perf_counter() - t0
        return result

    # One backend for the base model, shared by generation and evaluation; it loads the model only when a
    # stage actually calls it, so a fully cached run loads nothing. It lets go of the model while a
    # training run holds its own copy, so the two never share (GPU) memory.
    base_llm = instantiate(cfg.backend)
    argv = list(sys.argv)
    ddp_children_run_this_cell(cfg)
    try:
        drafted = timed("inputs", inputs.run, cfg, base_llm)  # None: the task's inputs need no model
        if drafted is not None:
            dirs["inputs"] = drafted
        dirs["generate"] = timed("generate", generate.run, cfg, base_llm)
        dirs["filter"] = timed("filter", filter_stage.run, cfg, dirs["generate"], base_llm)
        # A backend may keep its engine through training where the two share no device memory (a CPU vLLM engine).
        dirs["train"] = timed("train", train.run, cfg, dirs["filter"], tracker, before_training(base_llm))
        # System 1, System 2 and distilled, then the routed system built on the last two (eval.systems).
        dirs["evaluate"] = timed("evaluate", lambda: route.run(
            cfg, dirs["train"], evaluate.run(cfg, dirs["train"], base_llm), base_llm))
        # Wall time of this invocation per stage (near zero on a cache hit); not a metric of the cell.
        cell["seconds"] = timings
        metrics = report.run(cfg, cell, dirs, tracker)
        if cfg.on_nothing_to_distill == "fail" and metrics.get("train/pairs", 0) == 0:
            raise NothingToDistill(
                f"nothing to distill: filter '{cell['filter']}' kept 0 of {metrics.get('filter/seen')} train inputs "
                f"(yield 0.00; {metrics.get('filter/parse_failures')} samples had no parsable answer). Raise "
                "generate.n or generate.max_new_tokens, lower filter.min_share, try filter=none, or use a stronger "
                "model (model.name_or_path=...). System 1 and System 2 were evaluated and written to "
                f"{run_dir / 'metrics.json'}; on_nothing_to_distill=skip records this as a result instead.")
        ok = True
        if tracker.run_id:
            write_json(state_path, {"wandb_id": tracker.run_id, "status": "finished", "run_dir": str(run_dir)})
        return metrics
    finally:
        sys.argv = argv
        # The next cell of a sweep (same process) starts its own engine: this one's GPU share must be free.
        base_llm.release()
        link_stages(run_dir, dirs)
        # Always close the W&B run, so one failing cell of a sweep leaves a finished (failed) run behind.
        tracker.finish(exit_code=0 if ok else 1)
        log.info("run directory: %s", run_dir)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    quiet_library_noise()
    metrics = run(cfg)
    # Returned for Hydra sweepers that optimise a metric: the config's `objective` key of metrics.json.
    return metrics.get(cfg.objective)


if __name__ == "__main__":
    main()
