"""Content-addressed stage directories: a stage's directory is named by a hash of what determines its output.

What cannot change a record is declared in the config, `identity.exclude` (dotted paths: progress bars,
threads, device, chunking, sharding, where files live, logging), so changing it reuses finished work;
everything that can change a record is in. The backend node enters only
as its `_target_` and `dtype` (`model_key`): its batch_size, max_batch_tokens, loop and shared_prefill decide
how sequences are batched, and every sampled sequence draws from its own seeded stream (s2d/llm/hf.py), so
they change floating-point rounding at most, not the records (tested in tests/test_sampling.py). Likewise
chunk_size and sharding: a sample's seed comes from (seed, example, call stage, sample index) alone.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from s2d.artifacts import file_digest
from s2d.tasks.base import drafting, version_of

def exclude_patterns(node: DictConfig) -> list[str]:
    """`identity.exclude` of the config the node belongs to: dotted paths (globs, `*` spans dots) that never
    change a stage's records. A node detached from the primary config (the organism's own training config)
    uses the primary config file's list, so the rule is declared in one place."""
    root = node._get_root()
    found = OmegaConf.select(root, "identity.exclude", default=None) if isinstance(root, DictConfig) else None
    return list(found) if found is not None else declared_exclude()


@functools.cache
def declared_exclude() -> list[str]:
    return list(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "config.yaml").identity.exclude)


def content(node: DictConfig, exclude: Sequence[str] | None = None) -> Any:
    """The node's resolved values without the paths the config's `identity.exclude` names."""
    patterns = exclude_patterns(node) if exclude is None else list(exclude)
    return _strip(OmegaConf.to_container(node, resolve=True), node._get_full_key(None) or "", patterns)


def _strip(obj: Any, path: str, patterns: Sequence[str]) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            if not any(fnmatch.fnmatchcase(sub, p) for p in patterns):
                out[k] = _strip(v, sub, patterns)
        return out
    if isinstance(obj, list):
        return [_strip(v, path, patterns) for v in obj]
    return obj


def digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def model_key(cfg: DictConfig) -> dict:
    """The model and the numerics it runs with; the backend's batch size and device are infrastructure."""
    from hydra.utils import instantiate

    source = instantiate(cfg.model)
    ident = source.identity()
    src, gguf = source.resolve()
    if gguf:
        ident["gguf_sha256"] = _cached_digest(Path(src) / gguf)
    return {"model": ident, "backend": cfg.backend._target_, "dtype": cfg.backend.get("dtype")}


def method_key(node: DictConfig) -> dict:
    """The method's (or a model-calling filter's) config and the full text of every prompt it sends: its
    module's defaults with `prompts.<name>` overrides applied, so editing a default prompt redoes its work."""
    config = content(node)
    config.pop("prompts", None)
    return {"config": config, "prompts": prompts_of(node)}


def prompts_of(node: DictConfig) -> dict[str, str]:
    """Every text the node's method or filter sends: the defaults in its module (the one source of the texts),
    with the YAML's and command line's `prompts.<name>` overrides applied."""
    from hydra.utils import instantiate

    return dict(instantiate(node).prompts)


PROMPTED = ("method", "system1", "filter")  # the groups whose node may hold `prompts` (overrides only)


def prompts_in_effect(cfg: DictConfig) -> dict[str, dict[str, str]]:
    """{group: every prompt text it sends} for each of PROMPTED whose node has a `prompts` node: what
    `python -m s2d.prompts` prints and what the stages' DONE.json and the run's key hold in its place."""
    return {g: prompts_of(cfg[g]) for g in PROMPTED if g in cfg and "prompts" in cfg[g]}


def with_prompts_in_effect(cfg: DictConfig, container: dict) -> dict:
    """`container` (cfg as a dict) with each `prompts` overrides node replaced by every text in effect."""
    for group, prompts in prompts_in_effect(cfg).items():
        if group in container:
            container[group]["prompts"] = prompts
    return container


def task_key(cfg: DictConfig, split: str = "train") -> dict:
    """The task's config, its class's `version` (prompts and items) and the digest of every data file it
    reads (`Task.data_files()`: a new task that reads a file declares it there, whatever its key's name).

    For the eval split (`split="eval"`), keys the task class lists in `train_only_keys` are left out:
    e.g. the synthetic tasks' eval items do not depend on `n_train`, so a sweep over the number of
    unlabeled inputs evaluates System 1 and System 2 once.
    """
    from hydra.utils import instantiate

    cls = get_class(cfg.task._target_)
    config = content(cfg.task)
    if split == "eval":
        config = {k: v for k, v in config.items() if k not in cls.train_only_keys}
    task = instantiate(cfg.task)
    key = {"config": config, "version": version_of(cls, "task"),
           **{f"{name}_sha256": _cached_digest(path) for name, path in sorted(task.data_files().items())}}
    if (drafts := drafting(task)) is not None and drafts.items_graded:  # tasks/base.py DraftsInputs
        key["grader_version"] = cls.grader_version  # the grader chose the items: a grader change moves them
    return key


def inputs_key(cfg: DictConfig, requests, caps: dict[str, int] | None = None) -> str:
    """Task inputs the base model helps write (TriviaQA's model-made wrong answers, or which questions it
    knows): keyed by the model and what it is asked — every (request id, prompt), answered greedily under
    data_seed, with its token cap where `caps` gives one (where it is not the default) — so a task setting that
    leaves the requests alone (the split sizes of a known_only task) reuses the answers instead of asking again."""
    caps = caps or {}
    return digest("inputs", model_key(cfg), [[rid, prompt] + ([caps[rid]] if rid in caps else [])
                                             for rid, prompt in requests], int(cfg.data_seed))


def run_key(cfg: DictConfig) -> str:
    """One experiment cell: the whole config except where things are written and how they are logged."""
    return digest("run", with_prompts_in_effect(cfg, content(cfg)))


def generate_key(cfg: DictConfig) -> str:
    method = cfg.method if cfg.distill_from == "method" else cfg.system1
    return digest("generate", model_key(cfg), method_key(method), task_key(cfg), content(cfg.generate), cfg.seed)


def grader_version(cfg: DictConfig) -> int:
    """The task class's `grader_version` (answer extraction and scoring); 1 for a task that predates it."""
    return get_class(cfg.task._target_).grader_version


def filter_key(cfg: DictConfig, generate: str) -> str:
    """The filter's config and its rule (the source of its module: a changed rule redoes its picks, which are
    cheap); a filter that calls the model (USC) also the model and its prompt texts. The filter reads answers
    with the task's grader, so a grader change redoes it (generation is reused)."""
    import inspect

    cls = get_class(cfg.filter._target_)
    rule = hashlib.sha256(inspect.getsource(inspect.getmodule(cls)).encode()).hexdigest()[:12]
    filt = content(cfg.filter)
    if "prompts" in filt:  # the texts in effect (the YAML holds overrides only)
        filt["prompts"] = prompts_of(cfg.filter)
    parts: list[Any] = ["filter", generate, filt, cfg.target, {"grader_version": grader_version(cfg)},
                        rule]
    if cls.needs_model:
        parts += [model_key(cfg), method_key(cfg.filter)["prompts"]]
    return digest(*parts)


# Train options added after models were cached: keyed only when set, so a model trained before they existed
# keeps its key.
TRAIN_KEYED_WHEN_SET = ("group_by_length",)


def train_content(train: DictConfig) -> Any:
    """A train node's part of a key (distillation and organism alike)."""
    node = content(train)
    for key in TRAIN_KEYED_WHEN_SET:
        if not node.get(key):
            node.pop(key, None)
    return node


def train_key(cfg: DictConfig, targets: str) -> str:
    """`targets`: `targets_digest` of the filter's output, so a filter rerun that yields the same training
    pairs (a grader change under target=full_response) reuses the trained model."""
    return digest("train", targets, train_content(cfg.train), cfg.seed)


def targets_digest(filter_dir: Path) -> str:
    """Digest of the (prompt, target) pairs a filter kept: all that training reads from it."""
    from s2d.artifacts import read_jsonl

    return digest("targets", [(r["prompt"], r["target"]) for r in read_jsonl(Path(filter_dir) / "targets.jsonl")])


def evaluate_key(cfg: DictConfig, system: str, train: str | None) -> str:
    """System 1 depends on model and task only, so every method and filter in a sweep shares it. The sampling
    seed enters only when eval decoding samples: greedy records are the same at every seed."""
    seed = cfg.seed if cfg.eval.temperature > 0 else None
    parts: list[Any] = ["evaluate", system, model_key(cfg), task_key(cfg, "eval"), content(cfg.eval), seed]
    if system == "system1":
        parts.append(method_key(cfg.system1))
    if system == "system2":
        parts.append(method_key(cfg.method))
    if system == "distilled":
        parts.append(train)
    return digest(*parts)


_DIGESTS: dict[tuple[str, float], str] = {}


def _cached_digest(path: Path) -> str:
    """SHA-256 of a file; of its decompressed bytes for a `.gz` data file, so the shipped copy of a dataset and
    an uncompressed copy of it key stages alike."""
    stamp = (str(path.resolve()), path.stat().st_mtime)
    if stamp not in _DIGESTS:
        if path.name.endswith(".gz"):
            import gzip

            h = hashlib.sha256()
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            _DIGESTS[stamp] = h.hexdigest()
        else:
            _DIGESTS[stamp] = file_digest(path)
    return _DIGESTS[stamp]
