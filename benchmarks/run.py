"""s2d performance benchmarks: `python benchmarks/run.py` → a printed table and benchmarks/results/latest.json.

Each section runs in its own subprocess so its peak memory is its own:
  generation       s2d's hf backend vs a sequential per-sample `generate` loop on the same System 2 prompts,
                   against the model's prefill rate (the compute limit), plus what each backend option buys
                   (batch size, shared prefill, bfloat16)
  self_consistency wall time of N = 1, 4, 8 samples per input
  cache            the generate stage run twice with the same config: the rerun is a cache hit
  training         tokens/s and peak memory of the Lightning SFT stage
  e2e              the default `python -m s2d.run` on a fresh stage cache (the converted model is reused)
  vllm             s2d's hf loop against the real vLLM engine (here its CPU build), side by side on the same
                   prompts in one run: greedy and N=4 tokens/s at batch 1, 32 and 128, the engine's start time,
                   and `python -m s2d.run experiment=smoke backend=vllm` end to end; skipped where vllm cannot
                   be imported

Ratios are the headline; absolute numbers depend on the machine, which is recorded with them.
Options: --skip e2e,training (sections to leave out), --out PATH, --tiny (every section at toy sizes: what
the fast test runs so the suite cannot rot), --set KEY=VALUE (a Hydra override for every section, e.g.
model.name_or_path=DIR; the sections default to model=smollm2-135m, the default run to its own config).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("generation", "self_consistency", "cache", "training", "e2e", "vllm")
SEED = 0
# Sizes of a full run and of --tiny (toy sizes: the fast test checks that every section still runs).
SIZES = {"full": {"gen_inputs": 32, "sc_inputs": 8, "train_pairs": 32, "new_tokens": 64, "cache_inputs": 16,
                  "vllm_batches": (1, 32, 128), "variants": True},
         "tiny": {"gen_inputs": 2, "sc_inputs": 2, "train_pairs": 4, "new_tokens": 4, "cache_inputs": 2,
                  "vllm_batches": (1, 2), "variants": True}}
ARGS = None  # the section's parsed arguments (set in main)


def size(key: str):
    return SIZES["tiny" if ARGS is not None and ARGS.tiny else "full"][key]


def overrides() -> list[str]:
    return ["model=smollm2-135m", *(ARGS.set if ARGS is not None else [])]


# ---- shared helpers (run inside a section's subprocess) ------------------------------------------------

def compose(*extra: str):
    import s2d.config  # noqa: F401  (registers the schema)
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        # The section's own overrides come first, then --set's (`backend=vllm` before `backend.*` keys).
        return hydra_compose("config", overrides=["paths.output_dir=" + tempfile.mkdtemp(), "logger=none",
                                                  *extra, *overrides(), "backend.progress=false"])


def backend(*config: str, **options):
    from hydra.utils import instantiate

    cfg = compose(*config)
    return instantiate(cfg.backend, **options)


def workload(n_inputs: int):
    """The first call of 2-step RaR on coin-flip train inputs, built by the method itself: real prompts."""
    from s2d.methods.rar import RaR2
    from s2d.tasks.coin_flip import CoinFlip

    task = CoinFlip(n_train=n_inputs, n_eval=1, seed=SEED)
    return [RaR2().prompts["rephrase"].format(question=task.prompt(e), note=f" {task.rephrase_note}"
                                              if task.rephrase_note else "").strip() for e in task.train_examples()]


def timed_generate(llm, prompts, sampling) -> tuple[float, int]:
    t0 = time.perf_counter()
    outs = llm.generate(prompts, sampling)
    return time.perf_counter() - t0, sum(c.completion_tokens for comps in outs for c in comps)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---- sections -----------------------------------------------------------------------------------------------

def section_generation(args) -> dict:
    import torch

    from s2d.types import Sampling

    llm = backend()
    llm._ensure_loaded()
    model, tok = llm.model, llm.tokenizer
    prompts = workload(size("gen_inputs"))
    samp = Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=size("new_tokens"), seed=SEED)
    timed_generate(llm, prompts[:1], Sampling(n=1, max_new_tokens=4))  # warm-up

    # s2d: the whole batch of prompts × n samples
    s2d_s, s2d_tok = timed_generate(llm, prompts, samp)

    # the peer baseline: one prompt, one sample per `generate` call, on the same prompts
    seq_tok, t0 = 0, time.perf_counter()
    for i, p in enumerate(prompts):
        ids = torch.tensor([llm.encode(p)])
        for k in range(samp.n):
            torch.manual_seed(SEED * 1000 + i * 10 + k)
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                     temperature=samp.temperature, top_p=samp.top_p, top_k=0,
                                     max_new_tokens=samp.max_new_tokens, pad_token_id=tok.pad_token_id)
            seq_tok += llm._completion(out[0, ids.shape[1]:].tolist(), ids.shape[1], ()).completion_tokens
    seq_s = time.perf_counter() - t0

    # the limit: prefill (one forward pass over full batches, no cache) in tokens/s
    lengths = [len(llm.encode(p)) for p in prompts]
    width = 256
    batch = torch.randint(100, tok.vocab_size - 1, (8, width))
    with torch.inference_mode():
        model(input_ids=batch)
        t0 = time.perf_counter()
        for _ in range(2):
            model(input_ids=batch)
        prefill_rate = 2 * batch.numel() / (time.perf_counter() - t0)

    s2d_rate, seq_rate = s2d_tok / s2d_s, seq_tok / seq_s
    result = {
        "inputs": len(prompts), "samples_per_input": samp.n, "max_new_tokens": samp.max_new_tokens,
        "mean_prompt_tokens": sum(lengths) / len(lengths),
        "s2d_tokens": s2d_tok, "s2d_seconds": s2d_s, "s2d_tokens_per_s": s2d_rate,
        "sequential_tokens": seq_tok, "sequential_seconds": seq_s, "sequential_tokens_per_s": seq_rate,
        "prefill_tokens_per_s": prefill_rate,
        "speedup_vs_sequential": s2d_rate / seq_rate,
        "fraction_of_prefill_rate": s2d_rate / prefill_rate,
    }

    # what each option buys, on the same prompts and sampling
    variants = {}
    for name, opts in (("loop=generate", {"loop": "generate"}), ("shared_prefill=false", {"shared_prefill": False}),
                       ("batch_size=32", {"batch_size": 32}), ("batch_size=64", {"batch_size": 64}),
                       ("dtype=bfloat16", {"dtype": "bfloat16"})):
        if name.startswith("dtype"):
            other = backend(**opts)
        else:
            other = backend(**opts)
            other._model, other._tok = model, tok  # same weights, no reload
        secs, toks = timed_generate(other, prompts, samp)
        variants[name] = {"seconds": secs, "tokens": toks, "tokens_per_s": toks / secs}
    result["variants"] = variants
    result["peak_rss_gib"] = peak_rss_gib()
    return result


def section_self_consistency(args) -> dict:
    from s2d.types import Sampling

    llm = backend()
    prompts = workload(size("sc_inputs"))
    timed_generate(llm, prompts[:1], Sampling(n=1, max_new_tokens=4))
    out = {}
    for n in (1, 4, 8):
        secs, toks = timed_generate(llm, prompts, Sampling(n=n, temperature=0.7, top_p=0.9, max_new_tokens=size("new_tokens"),
                                                           seed=SEED))
        out[f"n{n}_seconds"] = secs
        out[f"n{n}_tokens"] = toks
    out["n8_over_n1_time"] = out["n8_seconds"] / out["n1_seconds"]
    out["n4_over_n1_time"] = out["n4_seconds"] / out["n1_seconds"]
    out["inputs"] = len(prompts)
    return out


def section_cache(args) -> dict:
    from s2d.stages import generate

    with tempfile.TemporaryDirectory() as d:
        cfg = compose(f"paths.cache_dir={d}", f"task.n_train={size('cache_inputs')}")
        t0 = time.perf_counter()
        generate.run(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate.run(compose(f"paths.cache_dir={d}", f"task.n_train={size('cache_inputs')}"))
        rerun = time.perf_counter() - t0
    return {"first_seconds": first, "rerun_seconds": rerun, "rerun_over_first_time": rerun / first,
            "note": "first run includes loading the model; rerun composes the config, hashes it and finds DONE.json"}


def section_training(args) -> dict:
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from s2d.tasks.coin_flip import CoinFlip
    from s2d.training import SFTDataModule

    cfg = compose("train.trainer.enable_progress_bar=false", *(["train.trainer.max_steps=1"] if ARGS.tiny else []))
    task = CoinFlip(n_train=size("train_pairs"), n_eval=1, seed=SEED)
    pairs = [(task.prompt(e), task.format_answer(e.gold)) for e in task.train_examples()]
    model, tok = instantiate(cfg.model).load(cfg.train.dtype)
    data = SFTDataModule(pairs, tok, batch_size=cfg.train.batch_size, max_length=cfg.train.max_length, seed=SEED)
    data.setup()
    tokens_per_epoch = sum(len(f["input_ids"]) for f in data.features)
    module = instantiate(cfg.train.module, model=model)
    with tempfile.TemporaryDirectory() as d:
        trainer = instantiate(cfg.train.trainer, default_root_dir=d, logger=False, enable_checkpointing=False)
        pl.seed_everything(SEED, verbose=False)
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=data)
        secs = time.perf_counter() - t0
    tokens = tokens_per_epoch * trainer.current_epoch
    return {"pairs": len(pairs), "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "tokens": tokens, "seconds": secs, "tokens_per_s": tokens / secs, "peak_rss_gib": peak_rss_gib(),
            "precision": str(cfg.train.trainer.precision)}


def s2d_run(d: str, *config: str) -> tuple[float, dict, str]:
    """`python -m s2d.run logger=none <config>` on a fresh stage cache: (seconds, metrics.json, its log)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    cmd = [sys.executable, "-m", "s2d.run", "logger=none", *config, "backend.progress=false",
           f"hydra.run.dir={d}/run", f"paths.cache_dir={d}/cache"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{proc.stderr[-3000:]}")
    return secs, json.loads(Path(d, "run", "metrics.json").read_text()), proc.stderr + proc.stdout


def section_e2e(args) -> dict:
    # --tiny: the smoke experiment on --set's model; otherwise the default run as a user starts it.
    config = ["experiment=smoke", *overrides()] if ARGS.tiny else []
    with tempfile.TemporaryDirectory() as d:
        secs, metrics, _ = s2d_run(d, *config)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {"seconds": secs, "peak_rss_gib": rss, "command": " ".join(["python -m s2d.run logger=none", *config]),
            "metrics": {k: metrics[k] for k in metrics if k.endswith(("accuracy", "tokens_per_input", "yield"))}}


def _vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def section_vllm(args) -> dict:
    """s2d's hf loop and the vLLM engine through the same backend interface, on the same prompts and sampling:
    the same chat template, token-id prompts, stopping and token counts, so tokens/s compare like for like."""
    from s2d.types import Sampling, request_seed

    if not _vllm_importable():
        return {"skipped": "vllm is not importable (CPU install line: docs/scaling-out.md)"}
    batches = size("vllm_batches")
    prompts = workload(max(batches))
    new = size("new_tokens")
    modes = {"greedy": Sampling(n=1, temperature=0.0, max_new_tokens=new),
             "n4": Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=new, seed=SEED)}
    seeds = [request_seed(SEED, i) for i in range(len(prompts))]

    def measure(llm) -> tuple[dict, list]:
        out, greedy_texts = {}, []
        for b in batches:
            for mode, samp in modes.items():
                # batch 1: the first four prompts one call each; otherwise one call over the first b prompts
                calls = [[i] for i in range(min(4, len(prompts)))] if b == 1 else [list(range(b))]
                secs = toks = 0
                for idx in calls:
                    t0 = time.perf_counter()
                    outs = llm.generate([prompts[i] for i in idx], samp, seeds=[seeds[i] for i in idx])
                    secs += time.perf_counter() - t0
                    toks += sum(c.completion_tokens for comps in outs for c in comps)
                    if mode == "greedy" and b == max(batches):
                        greedy_texts = [(comps[0].text, comps[0].completion_tokens) for comps in outs]
                out[f"{mode}_b{b}"] = {"seconds": secs, "tokens": toks, "tokens_per_s": toks / secs}
        return out, greedy_texts

    hf = backend()
    timed_generate(hf, prompts[:1], Sampling(n=1, max_new_tokens=4))  # loads the model; warm-up
    hf_res, hf_texts = measure(hf)
    hf.release()
    engine = backend("backend=vllm", "backend.dtype=float32")
    t0 = time.perf_counter()
    engine.generate(prompts[:1], Sampling(n=1, max_new_tokens=4))  # starts the engine; warm-up
    start_s = time.perf_counter() - t0
    info = dict(engine.engine_info or {})
    vllm_res, vllm_texts = measure(engine)
    engine.release()
    ratios = {k: vllm_res[k]["tokens_per_s"] / hf_res[k]["tokens_per_s"] for k in hf_res}
    same = sum(a == b for a, b in zip(hf_texts, vllm_texts))
    smoke_run = None
    if not ARGS.tiny:  # (the e2e section already runs s2d_run at toy size)
        smoke = ["experiment=smoke", "backend=vllm", *(o for o in overrides() if not o.startswith("model="))]
        with tempfile.TemporaryDirectory() as d:
            smoke_s, _, log = s2d_run(d, *smoke)
        smoke_run = {"command": "python -m s2d.run logger=none " + " ".join(smoke), "seconds": smoke_s,
                     "engine_starts": log.count("vllm: engine up for")}
    return {"prompts": len(prompts), "max_new_tokens": new, "batches": list(batches),
            "hf": hf_res, "vllm": vllm_res, "vllm_over_hf": ratios,
            "engine_start_seconds": start_s, "engine": info,
            "greedy_same_text_and_tokens": f"{same} of {len(hf_texts)}", "smoke_run": smoke_run}


# ---- orchestration ---------------------------------------------------------------------------------------------

def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


GOALS = [  # (key, comparison, target, what)
    ("generation.speedup_vs_sequential", ">=", 8.0, "s2d generation vs sequential loop"),
    ("generation.fraction_of_prefill_rate", ">=", 0.5, "generation rate / prefill rate"),
    ("self_consistency.n8_over_n1_time", "<=", 3.0, "wall time N=8 / N=1"),
    ("cache.rerun_over_first_time", "<=", 0.02, "generate-stage rerun / first run"),
    ("e2e.seconds", "<=", 600.0, "default run wall time (s)"),
    ("e2e.peak_rss_gib", "<=", 6.0, "default run peak memory (GiB)"),
]


def lookup(results: dict, dotted: str):
    node = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def row(name: str, v: dict) -> str:
    """One generation line of the table: rate, tokens and seconds."""
    return f"  {name:<20}{v['tokens_per_s']:8.1f} tok/s  ({v['tokens']} tokens, {v['seconds']:.1f} s)"


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB, torch {m['torch']} "
             f"({m['torch_threads']} threads)", "",
             f"{'goal':<36}{'measured':>12}{'target':>12}  met"]
    for key, op, target, what in GOALS:
        value = lookup(results, key)
        if value is None:
            lines.append(f"{what:<36}{'skipped':>12}{op + ' ' + str(target):>12}")
            continue
        met = value >= target if op == ">=" else value <= target
        lines.append(f"{what:<36}{value:>12.3f}{op + ' ' + str(target):>12}  {'yes' if met else 'NO'}")
    g = results.get("generation")
    if g:
        lines += ["", f"generation ({g['inputs']} inputs x {g['samples_per_input']} samples, <= {g['max_new_tokens']} "
                      f"new tokens, prompts ~{g['mean_prompt_tokens']:.0f} tokens):",
                  row("s2d hf backend", {k: g[f"s2d_{k}"] for k in ("tokens_per_s", "tokens", "seconds")}),
                  row("sequential loop", {k: g[f"sequential_{k}"] for k in ("tokens_per_s", "tokens", "seconds")}),
                  f"  {'prefill (limit)':<20}{g['prefill_tokens_per_s']:8.1f} tok/s"]
        lines += [row(name, v) for name, v in g["variants"].items()]
    s = results.get("self_consistency")
    if s:
        lines.append(f"self-consistency: N=1 {s['n1_seconds']:.1f} s, N=4 {s['n4_seconds']:.1f} s, N=8 {s['n8_seconds']:.1f} s "
                     f"({s['inputs']} inputs)")
    c = results.get("cache")
    if c:
        lines.append(f"cache: first generate stage {c['first_seconds']:.1f} s, rerun {c['rerun_seconds']:.3f} s")
    t = results.get("training")
    if t:
        lines.append(f"training: {t['tokens_per_s']:.0f} tok/s ({t['pairs']} pairs, {t['steps']} steps, {t['seconds']:.1f} s), "
                     f"peak {t['peak_rss_gib']:.2f} GiB")
    e = results.get("e2e")
    if e:
        lines.append(f"default run: {e['seconds']:.0f} s, peak {e['peak_rss_gib']:.2f} GiB")
    v = results.get("vllm")
    if v and "skipped" in v:
        lines.append(f"vllm: skipped ({v['skipped']})")
    elif v:
        lines += ["", f"s2d hf loop vs vLLM engine, same {v['prompts']} prompts, <= {v['max_new_tokens']} new tokens "
                      f"(tokens/s; vLLM started in {v['engine_start_seconds']:.1f} s):",
                  f"  {'':<12}{'hf':>10}{'vllm':>10}{'vllm/hf':>10}"]
        for k in v["hf"]:
            lines.append(f"  {k:<12}{v['hf'][k]['tokens_per_s']:>10.1f}{v['vllm'][k]['tokens_per_s']:>10.1f}"
                         f"{v['vllm_over_hf'][k]:>10.2f}")
        lines.append(f"  greedy at the largest batch, same text and tokens: {v['greedy_same_text_and_tokens']}")
        if v.get("smoke_run"):
            r = v["smoke_run"]
            lines.append(f"  {r['command']}: {r['seconds']:.0f} s, {r['engine_starts']} engine starts")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out: " + ",".join(SECTIONS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    ap.add_argument("--tiny", action="store_true", help="every section at toy sizes (the fast test's check)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a Hydra override for every section (repeatable), e.g. model.name_or_path=DIR")
    args = ap.parse_args()
    global ARGS
    ARGS = args
    if args.section:
        print(json.dumps(globals()[f"section_{args.section}"](args)))
        return
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(SECTIONS)
    if unknown:
        ap.error(f"--skip: unknown sections {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "sizes": "tiny" if args.tiny else "full", "overrides": overrides()}
    for name in SECTIONS:
        if name in skip:
            continue
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--section", name, *(["--tiny"] if args.tiny else []),
               *(f"--set={o}" for o in args.set)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark section '{name}' failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
