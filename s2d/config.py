"""Typed schema of the primary config, so an ill-typed value (generate.n=many) fails at compose time.

The group nodes (model, method, …) stay free-form here: their keys are checked by Hydra's struct mode
and their values by the `_target_` they instantiate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from s2d.types import Sampling


# The schema gives the types; the values live once, in conf/config.yaml (MISSING here: the YAML must set them).
@dataclass
class GenerateConf:
    n: int = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    max_new_tokens: int = MISSING
    stop: List[str] = MISSING
    chunk_size: int = MISSING
    num_shards: int = MISSING
    shard_id: Optional[int] = MISSING


@dataclass
class RouteConf:
    signal: str = MISSING
    threshold: float = MISSING
    k: int = MISSING
    temperature: float = MISSING
    top_p: float = MISSING


@dataclass
class EvalConf:
    systems: List[str] = MISSING
    k: int = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    max_new_tokens: int = MISSING
    stop: List[str] = MISSING
    chunk_size: int = MISSING
    route: RouteConf = field(default_factory=RouteConf)


@dataclass
class S2DConf:
    model: Any = MISSING
    backend: Any = MISSING
    method: Any = MISSING
    filter: Any = MISSING
    task: Any = MISSING
    train: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    system1: Any = MISSING
    plan: Any = MISSING  # python -m s2d.plan's pilot (s2d/plan.py)
    identity: Any = MISSING  # identity.exclude: dotted paths left out of every stage key (s2d/cache.py)
    seed: int = MISSING  # sampling
    data_seed: int = MISSING  # splits, templates, pools, few-shot draws
    target: str = MISSING
    distill_from: str = MISSING
    on_nothing_to_distill: str = MISSING
    # The metric a Hydra sweeper optimises (returned by s2d.run.main); a key of metrics.json.
    objective: str = MISSING
    generate: GenerateConf = field(default_factory=GenerateConf)
    eval: EvalConf = field(default_factory=EvalConf)


TARGETS = ("answer", "full_response")
DISTILL_FROM = ("method", "system1")
ON_NOTHING_TO_DISTILL = ("fail", "skip")
SYSTEMS = ("system1", "system2", "distilled", "routed")


def register() -> None:
    ConfigStore.instance().store(name="s2d_schema", node=S2DConf)


def check(cfg) -> None:
    """Value checks a type cannot express, run before any stage so no work is lost to a typo."""
    if cfg.target not in TARGETS:
        raise ValueError(f"target='{cfg.target}' is not allowed; use one of: {', '.join(TARGETS)}")
    unknown = [s for s in cfg.eval.systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"eval.systems: unknown {unknown}; allowed: {', '.join(SYSTEMS)}")
    if cfg.distill_from not in DISTILL_FROM:
        raise ValueError(f"distill_from='{cfg.distill_from}' is not allowed; use one of: {', '.join(DISTILL_FROM)}")
    if cfg.on_nothing_to_distill not in ON_NOTHING_TO_DISTILL:
        raise ValueError(f"on_nothing_to_distill='{cfg.on_nothing_to_distill}' is not allowed; use one of: "
                         f"{', '.join(ON_NOTHING_TO_DISTILL)}")
    check_leaf_types(cfg)
    _check_token_budgets(cfg)
    if "routed" in cfg.eval.systems:
        _check_route(cfg.eval.route)
    for key, samples in (("generate", "n"), ("eval", "k")):
        node = cfg[key]
        if node[samples] < 1 or node.chunk_size < 1 or node.max_new_tokens < 1 or not 0 < node.top_p <= 1 \
                or node.temperature < 0:
            raise ValueError(f"{key}: need {samples} >= 1, chunk_size >= 1, max_new_tokens >= 1, 0 < top_p <= 1, "
                             f"temperature >= 0; got {samples}={node[samples]}, chunk_size={node.chunk_size}, "
                             f"max_new_tokens={node.max_new_tokens}, top_p={node.top_p}, temperature={node.temperature}")
        if node[samples] > 1 and node.temperature == 0:
            raise ValueError(f"{key}.{samples}={node[samples]} samples at {key}.temperature=0 are all the same "
                             f"greedy output; set {key}.temperature > 0 (e.g. 0.7)")

def _check_route(node) -> None:
    """eval.route: a known signal and agreement samples that can differ."""
    from s2d.routing import SIGNALS

    if node.signal not in SIGNALS:
        raise ValueError(f"eval.route.signal='{node.signal}' is not allowed; use one of: {', '.join(SIGNALS)}")
    if node.k < 1 or node.temperature <= 0 or not 0 < node.top_p <= 1:
        raise ValueError(f"eval.route: need k >= 1, temperature > 0 (agreement samples at temperature 0 all equal "
                         f"the greedy answer), 0 < top_p <= 1; got k={node.k}, temperature={node.temperature}, "
                         f"top_p={node.top_p}")


def _check_token_budgets(cfg) -> None:
    """A method's calls need room for its format (a rewrite, a rephrased question); say which key to raise."""
    from hydra.utils import get_class

    generating = cfg.method if cfg.distill_from == "method" else cfg.system1
    uses = [("generate.max_new_tokens", generating)]
    if "system2" in cfg.eval.systems or "routed" in cfg.eval.systems:
        uses.append(("eval.max_new_tokens", cfg.method))
    if "system1" in cfg.eval.systems:
        uses.append(("eval.max_new_tokens", cfg.system1))
    for key, node in uses:
        need = get_class(node._target_).min_new_tokens
        have = OmegaConf.select(cfg, key)
        if have < need:
            raise ValueError(f"{key}={have} is too small for method '{node._target_.rsplit('.', 1)[-1]}', whose "
                             f"calls need at least {need} new tokens; set {key}>={need}")


register()


# Config groups whose nodes build an object with `_target_`; their leaf values are checked against the
# constructor's annotations before any stage runs.
TARGET_NODES = ("model", "backend", "method", "filter", "task", "system1", "logger")


def check_leaf_types(cfg) -> None:
    """Each leaf of a `_target_` node against its constructor's annotation (int, float, bool, str, or one of
    them or None), so `task.n_train=abc` stops before any stage, naming the key and the expected type.
    Values of other annotations (nodes, lists, model sources) are left to the constructor."""
    for key in TARGET_NODES:
        node = cfg.get(key)
        if isinstance(node, DictConfig) and "_target_" in node:
            _check_node(node, key)


_SIMPLE = (bool, int, float, str, type(None))


def _check_node(node: DictConfig, where: str) -> None:
    import typing

    from hydra.utils import get_class

    cls = get_class(node._target_)
    init = cls.__init__
    try:
        hints = typing.get_type_hints(init)
    except NameError:
        return  # an annotation names a type only imported for type checkers: nothing to check against
    for name in node:
        if str(name).startswith("_") or name not in hints:
            continue
        allowed = _simple_types(hints[name])
        if allowed is None:
            continue
        value = OmegaConf.select(node, str(name), throw_on_resolution_failure=False)
        if isinstance(value, (DictConfig, ListConfig)):
            continue
        ok = isinstance(value, tuple(allowed)) and not (isinstance(value, bool) and bool not in allowed)
        if not ok and isinstance(value, int) and float in allowed and not isinstance(value, bool):
            ok = True  # an int where a float is expected is fine (lr=1)
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ValueError(f"{where}.{name}={value!r}: expected {names} ({cls.__name__} in {node._target_}); "
                             f"fix {where}.{name} on the command line or in conf/{where}/")


def _simple_types(annotation) -> tuple | None:
    """The plain types an annotation allows (int | None → (int, NoneType)); None for anything else."""
    import types
    import typing

    if annotation in _SIMPLE:
        return (annotation,)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if all(a in _SIMPLE for a in args):
            return tuple(args)
    return None


def sampling(node: DictConfig, seed: int) -> Sampling:
    """Sampling of `generate` (n samples per input) or `eval` (k samples per input)."""
    return Sampling(
        n=int(node.n if "n" in node else node.k),
        temperature=float(node.temperature),
        top_p=float(node.top_p),
        max_new_tokens=int(node.max_new_tokens),
        seed=int(seed),
        stop=tuple(node.get("stop") or ()),
    )
