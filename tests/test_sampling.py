"""Batch-invariant sampling: a sample's tokens depend on (seed, example, call, sample index) only."""

import pytest

from conftest import backend_with, ScriptedLLM
from s2d.types import Call, Sampling, Trace, request_seed

PROMPTS = ["short", "a somewhat longer prompt here", "mid length", "x" * 40, "yy", "the last one"]


_with = backend_with


def _records(out):
    return [[(c.text, c.completion_tokens, c.truncated) for c in o] for o in out]


def test_request_seed_is_a_pure_function_of_its_parts():
    assert request_seed(0, "ex1", "rephrase") == request_seed(0, "ex1", "rephrase")
    seeds = {request_seed(s, e, st) for s in (0, 1) for e in ("a", "b") for st in ("rephrase", "respond")}
    assert len(seeds) == 8 and all(0 <= s < 2**31 for s in seeds)


# top-p 1.0 samples over the whole vocabulary: the same property, a minute on 2 cores (slow tier)
@pytest.mark.parametrize("top_p", [0.9, pytest.param(1.0, marks=pytest.mark.slow)])
def test_sampled_records_do_not_depend_on_batching(tiny_backend, top_p):
    s = Sampling(n=3, temperature=1.0, top_p=top_p, max_new_tokens=10, seed=5)
    ref = _records(_with(tiny_backend, batch_size=4).generate(PROMPTS, s))
    assert len({c for o in ref for c in o}) > 6, "samples should vary"
    for options in ({"batch_size": 32}, {"batch_size": 32, "shared_prefill": False}, {"max_batch_tokens": 120},
                    {"batch_size": 1}, {"batch_size": 32, "loop": "generate"},
                    {"batch_size": 4, "loop": "generate", "shared_prefill": False}):
        assert _records(_with(tiny_backend, **options).generate(PROMPTS, s)) == ref, options


def test_a_request_samples_the_same_alone_or_among_others(tiny_backend):
    s = Sampling(n=2, temperature=1.0, top_p=0.95, max_new_tokens=8)
    both = tiny_backend.generate(["alpha", "beta"], s, seeds=[11, 22])
    alone = tiny_backend.generate(["beta"], s, seeds=[22])
    swapped = tiny_backend.generate(["beta", "alpha"], s, seeds=[22, 11])
    assert _records(alone)[0] == _records(both)[1] == _records(swapped)[0]
    assert _records(swapped)[1] == _records(both)[0]
    # the same prompt under another seed samples otherwise
    assert _records(tiny_backend.generate(["beta"], s, seeds=[23])) != _records(alone)


def test_seeds_must_match_prompts(tiny_backend):
    with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
        tiny_backend.generate(["a"], Sampling(temperature=1.0), seeds=[1, 2])


def test_truncated_marks_completions_cut_by_max_new_tokens(tiny_backend):
    tok = tiny_backend.tokenizer
    ids = tok("abcd", add_special_tokens=False).input_ids
    assert tiny_backend._completion(ids, 1, (), max_new_tokens=4).truncated
    assert not tiny_backend._completion(ids[:3] + [tok.eos_token_id], 1, (), max_new_tokens=4).truncated
    assert not tiny_backend._completion(ids, 1, ("c",), max_new_tokens=4).truncated  # ended on its stop string
    out = tiny_backend.generate(PROMPTS, Sampling(max_new_tokens=3))
    # a completion shorter than the cap ended on EOS; at the cap, EOS would be counted as its last token
    assert all(c.completion_tokens == 3 for o in out for c in o if c.truncated)
    assert sum(c.truncated for o in out for c in o) >= 4


def test_stop_string_count_is_the_same_in_both_loops(tiny_backend):
    tok = tiny_backend.tokenizer
    ids = tok("ab|cdef", add_special_tokens=False).input_ids  # generate() may run on past the stop string
    c = tiny_backend._completion(ids, 1, ("|",), max_new_tokens=7)
    assert (c.text, c.completion_tokens, c.truncated) == ("ab", 3, False)


def test_truncated_travels_into_calls_and_old_records_read_false():
    from s2d.types import Completion

    call = Call.of("answer", "p", Completion("t", 3, 4, truncated=True))
    assert call.truncated and call.completion_tokens == 4
    old = {"example_id": "e", "sample": 0, "final_text": "t",
           "calls": [{"stage": "answer", "prompt": "p", "text": "t", "prompt_tokens": 3, "completion_tokens": 4}]}
    assert Trace.from_dict(old).calls[0].truncated is False
    assert Trace.from_dict(Trace("e", 0, [call], "t").to_dict()).calls[0].truncated is True


def test_method_records_equal_at_batch_size_4_and_32(tiny_backend, tmp_path):
    """RaR-2 end to end through the hf backend: the same records at any batch size, prefill and chunking."""
    from s2d.methods.rar import RaR2
    from s2d.stages.chunks import run_in_chunks
    from s2d.tasks.coin_flip import CoinFlip

    task = CoinFlip(n_train=4, n_eval=5)
    exs = task.eval_examples()
    s = Sampling(n=3, temperature=1.0, top_p=0.9, max_new_tokens=6, seed=2)

    def records(backend, chunk, name):
        traces, _ = run_in_chunks(tmp_path / f"{name}.jsonl", exs, s, chunk,
                                  lambda c, samp: RaR2().run(c, task, backend, samp))
        return [t.to_dict() for t in traces]

    ref = records(_with(tiny_backend, batch_size=4), 5, "b4")
    assert len(ref) == 15 and len({t["calls"][1]["text"] for t in ref}) > 3
    assert records(_with(tiny_backend, batch_size=32), 5, "b32") == ref
    assert records(_with(tiny_backend, batch_size=32, shared_prefill=False), 2, "b32-noshare-chunk2") == ref
    # another sampling seed samples other records
    other, _ = run_in_chunks(tmp_path / "seed3.jsonl", exs, Sampling(**{**s.__dict__, "seed": 3}), 5,
                             lambda c, samp: RaR2().run(c, task, _with(tiny_backend), samp))
    assert [t.to_dict() for t in other] != ref


def test_two_calls_seed_each_sample_of_each_example_apart():
    """Identical call-2 prompts (same rephrasing) still get their own seeds, per example and per sample."""
    from s2d.methods.rar import RaR2
    from s2d.tasks.coin_flip import CoinFlip

    task = CoinFlip(n_train=2, n_eval=3)
    llm = ScriptedLLM(lambda p, k: "Is it heads?" if "Rewrite" in p else "Yes.")
    RaR2().run(task.eval_examples(), task, llm, Sampling(n=4, temperature=0.7, seed=9))
    first, second = llm.seeds
    assert len(set(first)) == 3
    assert len(second) == 12 and len(set(second)) == 12
    assert len(set(llm.calls[1][1])) == 1  # every call-2 prompt is the same text
    # the seeds are functions of (seed, example, stage, sample) alone: a subset of examples gets the same ones
    llm2 = ScriptedLLM(llm.reply)
    RaR2().run(task.eval_examples()[1:], task, llm2, Sampling(n=4, temperature=0.7, seed=9))
    assert llm2.seeds[0] == first[1:] and llm2.seeds[1] == second[4:]
