"""Golden numbers of the tiny in-process model: greedy and sampled token ids, SFT losses, a tiny loop's metrics.

`python tests/golden/tiny_numbers.py` regenerates tests/golden/tiny.json after a change that is meant to move them
(say which and why in the commit); tests/test_golden.py recomputes them and fails when anything moved.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
GOLDEN = HERE / "tiny.json"
PROMPTS = ["What is 2 plus 3?", "Name a color.", "Take the last letters of the words in \"Kate Molly\"."]
PAIRS = [("What is 2 plus 3?", "Final answer: 5"), ("Name a color.", "Red."), ("Is ice cold?", "Yes.")]
LOOP_KEYS = ("system1/accuracy", "system1/tokens_per_input", "system2/accuracy", "system2/tokens_per_input",
             "distilled/accuracy", "distilled/tokens_per_input", "filter/kept", "train/pairs", "train/loss")


def generation(model_dir: Path) -> dict:
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource
    from s2d.types import Sampling

    llm = HFBackend(ModelSource(name="tiny", name_or_path=str(model_dir)), batch_size=4, progress=False)
    greedy = llm.generate(PROMPTS, Sampling(max_new_tokens=12))
    sampled = llm.generate(PROMPTS, Sampling(n=2, temperature=0.7, top_p=0.9, max_new_tokens=12, seed=3))
    ids = lambda text: llm.tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    return {"greedy_ids": [ids(c[0].text) for c in greedy],
            "greedy_tokens": [c[0].completion_tokens for c in greedy],
            "sampled_ids": [[ids(s.text) for s in c] for c in sampled]}


def sft_losses(model_dir: Path, work: Path) -> list[float]:
    from s2d.llm.model import ModelSource
    from s2d.training.fit import fit

    sys.path.insert(0, str(TESTS))
    log = work / "losses.jsonl"
    train = compose("train.trainer.max_steps=3", "train.batch_size=2", "train.module.optimizer.lr=1e-3",
                    "train.trainer.enable_progress_bar=false",
                    f"+train.extra_callbacks=[{{_target_: helpers.RecordLosses, path: '{log}'}}]").train
    fit(PAIRS, ModelSource(name="tiny", name_or_path=str(model_dir)), train, work / "sft", seed=0)
    return [json.loads(line) for line in log.read_text().splitlines()]


def loop_metrics(model_dir: Path, work: Path) -> dict:
    from conftest import tiny_overrides
    from s2d.run import run

    metrics = run(compose(*tiny_overrides(model_dir, work / "loop", "method=rar2", "task=coin_flip",
                                          "task.n_train=4", "task.n_eval=4", "target=full_response", "filter=none")))
    return {k: metrics.get(k) for k in LOOP_KEYS}


def compose(*overrides: str):
    from conftest import compose_config

    return compose_config(*overrides, "paths.output_dir=/tmp/s2d-golden")


def compute(model_dir: Path, work: Path) -> dict:
    return {"generation": generation(model_dir), "sft_losses": sft_losses(model_dir, work),
            "loop": loop_metrics(model_dir, work)}


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS))
    from conftest import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "model")
        numbers = compute(model_dir, Path(tmp))
    GOLDEN.write_text(json.dumps(numbers, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
