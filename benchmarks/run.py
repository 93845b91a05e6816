"""s2d performance benchmarks: `python benchmarks/run.py` → a printed table and benchmarks/results/latest.json.

Each section runs in its own subprocess so its peak memory is its own:
  generation       s2d's hf backend vs a sequential per-sample `generate` loop on the same System 2 prompts,
                   against the model's prefill rate (the compute limit), plus what each backend option buys
                   (batch size, shared prefill, bfloat16)
  self_consistency wall time of N = 1, 4, 8 samples per input
  cache            the generate stage run twice with the same config: the rerun is a cache hit
  training         tokens/s and peak memory of the Lightning SFT stage
  e2e              the default `python -m s2d.run` on a fresh stage cache (the converted model is reused)

Ratios are the headline; absolute numbers depend on the machine, which is recorded with them.
Options: --skip e2e,training (sections to leave out), --out PATH.
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
SECTIONS = ("generation", "self_consistency", "cache", "training", "e2e")
SEED = 0


# ---- shared helpers (run inside a section's subprocess) ------------------------------------------------

def compose(*overrides: str):
    import s2d.config  # noqa: F401  (registers the schema)
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=["paths.output_dir=" + tempfile.mkdtemp(), "logger=none",
                                                  "backend.progress=false", *overrides])


def backend(**options):
    from hydra.utils import instantiate

    cfg = compose()
    return instantiate(cfg.backend, **options)


def workload(n_inputs: int):
    """The first call of 2-step RaR (the default System 2 method) on coin-flip train inputs: real prompts."""
    from s2d.methods.rar import REPHRASE
    from s2d.tasks.coin_flip import CoinFlip

    task = CoinFlip(n_train=n_inputs, n_eval=1, seed=SEED)
    return [f'"{task.prompt(e)}"\n\n{REPHRASE.format(note=task.rephrase_note).strip()}' for e in task.train_examples()]


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
    prompts = workload(args.gen_inputs)
    samp = Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=64, seed=SEED)
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
    prompts = workload(args.sc_inputs)
    timed_generate(llm, prompts[:1], Sampling(n=1, max_new_tokens=4))
    out = {}
    for n in (1, 4, 8):
        secs, toks = timed_generate(llm, prompts, Sampling(n=n, temperature=0.7, top_p=0.9, max_new_tokens=64,
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
        cfg = compose(f"paths.cache_dir={d}", "task.n_train=16")
        t0 = time.perf_counter()
        generate.run(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate.run(compose(f"paths.cache_dir={d}", "task.n_train=16"))
        rerun = time.perf_counter() - t0
    return {"first_seconds": first, "rerun_seconds": rerun, "rerun_over_first_time": rerun / first,
            "note": "first run includes loading the model; rerun composes the config, hashes it and finds DONE.json"}


def section_training(args) -> dict:
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from s2d.tasks.coin_flip import CoinFlip
    from s2d.training import SFTDataModule

    cfg = compose("train.trainer.enable_progress_bar=false")
    task = CoinFlip(n_train=args.train_pairs, n_eval=1, seed=SEED)
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


def section_e2e(args) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "s2d.run", "logger=none", "backend.progress=false",
                               f"hydra.run.dir={d}/run", f"paths.cache_dir={d}/cache"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"default run failed:\n{proc.stderr[-3000:]}")
        metrics = json.loads(Path(d, "run", "metrics.json").read_text())
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {"seconds": secs, "peak_rss_gib": rss, "command": "python -m s2d.run logger=none",
            "metrics": {k: metrics[k] for k in metrics if k.endswith(("accuracy", "tokens_per_input", "yield"))}}


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
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out: " + ",".join(SECTIONS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    ap.add_argument("--gen-inputs", type=int, default=32)
    ap.add_argument("--sc-inputs", type=int, default=8)
    ap.add_argument("--train-pairs", type=int, default=32)
    args = ap.parse_args()
    if args.section:
        print(json.dumps(globals()[f"section_{args.section}"](args)))
        return
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(SECTIONS)
    if unknown:
        ap.error(f"--skip: unknown sections {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for name in SECTIONS:
        if name in skip:
            continue
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--section", name, "--gen-inputs", str(args.gen_inputs),
               "--sc-inputs", str(args.sc_inputs), "--train-pairs", str(args.train_pairs)]
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
