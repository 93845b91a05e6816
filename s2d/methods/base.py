"""The method interface and the one-call program most methods are built from."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Protocol, Sequence, runtime_checkable

from s2d.llm.base import LLM, call_seeds, render_prompt, with_prompts  # noqa: F401  (methods import them from here)
from s2d.tasks.base import FewShotPool, Task, require
from s2d.types import Call, Example, Sampling, Trace, request_seed


class Method(Protocol):
    """`prompts`: every prompt text the method sends, by name (defaults in its module, each replaceable
    from config as `method.prompts.<name>`); the cache key holds these texts."""

    name: str
    prompts: dict[str, str]
    # The fewest new tokens a call of this method needs to hold its format (checked against the config's caps).
    min_new_tokens: int

    def run(self, examples: Sequence[Example], task: Task, llm: LLM, sampling: Sampling) -> list[Trace]:
        """`sampling.n` traces per example, ordered by example then sample."""
        ...


# Optional parts of a method: each a protocol, checked with isinstance in the one function below that needs it.


@runtime_checkable
class Teaches(Protocol):
    """A method the model organism (s2d/organism.py) can learn: `lessons(task, example)` -> (call name,
    prompt, code-written target) for every call on `example` (cot: the task's worked solution; S2A: the input
    without the opinion). A change to a method's lessons bumps `Organism.version`, so organisms are rebuilt."""

    name: str

    def lessons(self, task: Task, example: Example) -> list[tuple[str, object, str]]: ...


@runtime_checkable
class Replays(Protocol):
    """A method with a later call the organism keeps as the base model has it: `replays(task, example)` ->
    (call, that call's prompt, the plain prompt whose base-model reply is the call's target)."""

    name: str

    def replays(self, task: Task, example: Example) -> list[tuple[str, object, str]]: ...


OPTIONAL_METHOD_PARTS = (Teaches, Replays)


def teaching(method, key: str = "method") -> Teaches:
    """`method` as one the organism can learn, else an error naming `key`."""
    return require(method, Teaches, f"{key}: method '{method.name}' cannot be taught (it has no lessons(task, "
                                    "example)); methods with lessons: cot, s2a, bsm")


def lessons(method, task: Task, example: Example, key: str = "method") -> list[tuple[str, object, str]]:
    """(call name, prompt, code-written target) for every call of `method` on `example`: what the model
    organism (s2d/organism.py) trains on to learn the method (its optional part `Teaches`)."""
    return teaching(method, key).lessons(task, example)


def replaying(method, key: str, value: int, what: str) -> Replays:
    """`method` (taught where `key` says) as one with call replays, else an error naming the setting `key`=`value`
    that asks for them and `what` it needs them for."""
    return require(method, Replays, f"{key}={value}: the method taught on {what} ('{method.name}') has no "
                                    "replays(task, example) (no later call to replay); methods with call replays: "
                                    f"s2a. Set {key}=0")


def single_call(
    stage: str, examples: Sequence[Example], prompts: Sequence[str], task: Task, llm: LLM, sampling: Sampling
) -> list[Trace]:
    """One call per sample: the reply is the final output."""
    outs = llm.generate(prompts, sampling, desc=stage, seeds=call_seeds(sampling, examples, stage))
    traces = []
    for ex, prompt, comps in zip(examples, prompts, outs):
        for k, c in enumerate(comps):
            call = Call.of(stage, render_prompt(prompt), c)
            traces.append(Trace(ex.id, k, [call], c.text, task.extract(c.text, truncated=c.truncated)))
    return traces


def chain(
    stages: Sequence[str], examples: Sequence[Example], first_prompts: Sequence, task: Task, llm: LLM,
    sampling: Sampling, *next_inputs,
) -> list[Trace]:
    """A program of len(stages) calls in sequence: call 1 samples `n` replies per input, and every later call
    runs once on each sample's previous reply, so every stage is sampled n times (RaR-2, S2A, Self-Refine).

    `next_inputs[j](example, replies) -> (prompt, fell_back)` builds call j + 2 from the sample's replies so
    far (`replies[-1]`: call j + 1's); a fallback (a reply was unusable) is marked `meta.fallback` on the
    trace. The last reply is final. Call j > 1 of sample k draws from its own stream (seed, example, stage, k): identical replies
    still sample independently.
    """
    if len(next_inputs) != len(stages) - 1:
        raise ValueError(f"chain: {len(stages)} stages need {len(stages) - 1} prompt builders, got {len(next_inputs)}")
    firsts = llm.generate(first_prompts, sampling, desc=stages[0], seeds=call_seeds(sampling, examples, stages[0]))
    samples = [(ex, k, [Call.of(stages[0], render_prompt(p1), c)], c, False)
               for ex, p1, comps in zip(examples, first_prompts, firsts) for k, c in enumerate(comps)]
    for stage, build in zip(stages[1:], next_inputs):
        built = [build(ex, [c.text for c in calls]) for ex, _, calls, _, _ in samples]
        outs = llm.generate([p for p, _ in built], replace(sampling, n=1), desc=stage,
                            seeds=[request_seed(sampling.seed, ex.id, stage, k) for ex, k, _, _, _ in samples])
        samples = [(ex, k, [*calls, Call.of(stage, render_prompt(prompt), out[0])], out[0], fell or fallback)
                   for (ex, k, calls, _, fell), (prompt, fallback), out in zip(samples, built, outs)]
    return [Trace(ex.id, k, calls, last.text, task.extract(last.text, truncated=last.truncated),
                  meta={"fallback": True} if fell else {})
            for ex, k, calls, last, fell in samples]


def fewshot_messages(task: Task, example: Example, shots: int, seed: int, answer) -> list[dict]:
    """`shots` worked examples as earlier chat turns, then the question.

    The examples are the same for every question (a seeded draw from the task's pool: `fewshot_pool()`
    if the task has one, else its train inputs with their gold answers), except that a pool item with
    the question's own text is skipped, so an eval question never answers itself.
    """
    pool = task.fewshot_pool() if isinstance(task, FewShotPool) else task.train_examples()
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    chosen = [pool[i] for i in order if pool[i].input != example.input][:shots]
    if len(chosen) < shots:
        raise ValueError(f"few-shot prompt needs {shots} examples but the task's pool has {len(chosen)}; "
                         "lower the method's shots or raise task.n_train")
    messages = []
    for shot in chosen:
        messages += [{"role": "user", "content": task.prompt(shot)}, {"role": "assistant", "content": answer(shot)}]
    return messages + [{"role": "user", "content": task.prompt(example)}]

