"""The HF backend: exact token counts, n samples per prompt, order preserved across length-sorted batches."""

import pytest
from conftest import backend_with
from s2d.types import Sampling


def test_count_tokens_of_known_string(tiny_backend):
    assert tiny_backend.count_tokens("The answer is \"ne\".") == 19


def test_prompt_tokens_are_the_chat_template_length(tiny_backend):
    out = tiny_backend.generate(["hi"], Sampling(max_new_tokens=4))
    rendered = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # two special tokens per message turn opened/closed, the rest one per character
    expected = len(rendered) - len("<|im_start|>") * 2 - len("<|im_end|>") + 3
    assert out[0][0].prompt_tokens == expected == len(tiny_backend.encode("hi"))


def test_completion_counts_generated_tokens_up_to_eos(tiny_backend):
    tok = tiny_backend.tokenizer
    ids = tok("ab", add_special_tokens=False).input_ids
    eos = tok.eos_token_id
    # "ab" then EOS, then EOS used as padding: the model generated 3 tokens
    c = tiny_backend._completion(ids + [eos, eos, eos], prompt_tokens=7, stop=())
    assert (c.text, c.completion_tokens, c.prompt_tokens) == ("ab", 3, 7)
    # cut by max_new_tokens: no EOS, every token counts
    c = tiny_backend._completion(tok("abcd", add_special_tokens=False).input_ids, 7, ())
    assert (c.text, c.completion_tokens) == ("abcd", 4)


def test_stop_string_ends_text_and_count(tiny_backend):
    tok = tiny_backend.tokenizer
    ids = tok("ab|cd", add_special_tokens=False).input_ids[:3] + [tok.eos_token_id] * 2
    # generation ended on the stop string "|": the padding after it was not generated
    c = tiny_backend._completion(ids, 5, ("|",))
    assert (c.text, c.completion_tokens) == ("ab", 3)


def test_generation_respects_max_new_tokens(tiny_backend):
    out = tiny_backend.generate(["abc", "a much longer prompt than the first"], Sampling(max_new_tokens=6))
    assert all(1 <= o[0].completion_tokens <= 6 for o in out)


def test_n_samples_and_order(tiny_backend):
    prompts = ["x" * 30, "y", "z" * 10]
    out = tiny_backend.generate(prompts, Sampling(n=3, temperature=1.0, top_p=1.0, max_new_tokens=5, seed=1))
    assert [len(o) for o in out] == [3, 3, 3]
    assert [o[0].prompt_tokens for o in out] == [len(tiny_backend.encode(p)) for p in prompts]


def test_greedy_is_deterministic_and_seeded_sampling_repeats(tiny_backend):
    s = Sampling(n=2, temperature=1.0, top_p=0.9, max_new_tokens=8, seed=3)
    a = tiny_backend.generate(["hello", "world"], s)
    b = tiny_backend.generate(["hello", "world"], s)
    assert [[c.text for c in o] for o in a] == [[c.text for c in o] for o in b]


def test_shared_prefill_matches_separate_prefill(tiny_backend):
    prompts = ["short", "a somewhat longer prompt", "mid length"]
    plain = tiny_backend.generate(prompts, Sampling(n=1, max_new_tokens=8))
    shared = tiny_backend.generate(prompts, Sampling(n=3, max_new_tokens=8))
    assert tiny_backend.shared_prefill
    # greedy: every one of the n continuations off the shared cache equals the plain greedy one
    for p, s in zip(plain, shared):
        assert [c.text for c in s] == [p[0].text] * 3
        assert [c.completion_tokens for c in s] == [p[0].completion_tokens] * 3


def test_release_frees_the_model_and_reloads_on_demand(tiny_backend):
    before = tiny_backend.generate(["hi"], Sampling(max_new_tokens=4))
    tiny_backend.release()
    assert tiny_backend._model is None
    assert tiny_backend.generate(["hi"], Sampling(max_new_tokens=4)) == before


_with = backend_with


def test_pruned_loop_matches_transformers_generate_greedy(tiny_backend):
    prompts = ["short", "a somewhat longer prompt", "mid length", "x" * 40]
    free = _with(tiny_backend, loop="generate").generate(prompts, Sampling(max_new_tokens=12))
    # a stop string taken from one output, so some sequences end early and leave the batch
    letters = [ch for o in free for ch in o[0].text[2:] if ch.isalnum()]
    assert letters, [o[0].text for o in free]
    stop = letters[0]
    for n in (1, 3):
        for stops in ((), (stop,)):
            s = Sampling(n=n, max_new_tokens=12, stop=stops)
            ref = _with(tiny_backend, loop="generate").generate(prompts, s)
            got = tiny_backend.generate(prompts, s)
            assert [[c.text for c in o] for o in got] == [[c.text for c in o] for o in ref]
            counts, ref_counts = ([[c.completion_tokens for c in o] for o in x] for x in (got, ref))
            # generate() may run on past a stop string this char tokenizer hides from it; the count ends at the
            # token that completed the stop string in both loops
            assert counts == ref_counts
            assert [[c.truncated for c in o] for o in got] == [[c.truncated for c in o] for o in ref]
            if stops:
                for f, c in zip(free, counts):
                    if stop in f[0].text:  # greedy: every sample of this prompt meets the stop string
                        assert all(a < 12 for a in c)
    assert any(o[0].completion_tokens < 12 for o in got), "the stop string never ended a sequence early"


def test_pruned_loop_counts_eos_and_stops_at_it(monkeypatch):
    """A scripted model whose rows emit EOS at known steps: each ends there, EOS counted, the rest go on."""
    import torch

    from s2d.llm.hf import HFBackend

    class Scripted(torch.nn.Module):  # the next token is the last input token minus one; 2 (EOS) at the bottom
        def forward(self, input_ids, cache=None, **kw):
            nxt = (input_ids[:, -1] - 1).clamp(min=2)
            return type("Out", (), {"logits": torch.nn.functional.one_hot(nxt, 10).float()[:, None]})()

    class Tok:
        eos_token_id = 2

        def decode(self, ids, skip_special_tokens=True):
            return "".join("x" for i in ids if i != 2)

    backend = HFBackend.__new__(HFBackend)
    backend.shared_prefill = True
    backend._model, backend._tok = Scripted(), Tok()
    backend._model.config = None
    monkeypatch.setattr("s2d.llm.hf.StaticCache", lambda **kw: type("NoCache", (), {"layers": []})())
    ids = torch.tensor([[1, 1, 3], [1, 1, 5], [1, 1, 4], [1, 1, 9]])
    out = backend._decode(ids, torch.ones_like(ids), Sampling(max_new_tokens=5))
    # each row counts down to EOS and stops there (EOS included); the last is cut by max_new_tokens
    assert out == [[2], [4, 3, 2], [3, 2], [8, 7, 6, 5, 4]]


def test_batches_respect_sequence_and_token_limits(tiny_backend):
    b = _with(tiny_backend, batch_size=8, max_batch_tokens=100)
    lengths = [10, 40, 20, 30, 5]
    batches = b._batches(lengths, Sampling(n=2, max_new_tokens=10))
    assert sorted(i for batch in batches for i in batch) == list(range(5))
    for batch in batches:
        rows, width = len(batch) * 2, max(lengths[i] for i in batch) + 10
        assert rows <= 8 and (rows * width <= 100 or len(batch) == 1)
    assert batches[0] == [1]  # longest first; 2 × 50 tokens already fill the budget


@pytest.mark.slow  # thousands of draws against transformers' warper (30 s)
def test_sampling_keeps_exactly_the_top_p_nucleus():
    """s2d's sampler draws from the same nucleus as transformers' top-p warper, with or without the shortcut."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from s2d.llm.hf import sample_next

    torch.manual_seed(0)
    logits = torch.randn(6, 40) * 3
    for temperature, top_p in ((0.7, 0.9), (1.0, 0.5), (1.5, 0.99)):
        scaled = logits / temperature
        warped = TopPLogitsWarper(top_p)(None, scaled)
        nucleus = [set(torch.isfinite(row).nonzero().flatten().tolist()) for row in warped]
        probs = torch.softmax(warped, -1)
        likely = [set((row >= 0.01).nonzero().flatten().tolist()) for row in probs]
        for candidates in (40, 3):  # 3: most rows' nucleus is wider, so they take the full-sort path
            seen = [set() for _ in nucleus]
            for _ in range(1500):
                for r, t in enumerate(sample_next(logits, temperature, top_p, candidates=candidates).tolist()):
                    seen[r].add(t)
            for r in range(len(nucleus)):
                # never outside the nucleus; every token with >= 1% of its mass drawn (miss chance < 1e-6)
                assert likely[r] <= seen[r] <= nucleus[r], (temperature, top_p, candidates, r)


def test_sampling_frequencies_follow_the_renormalised_nucleus():
    import torch

    from s2d.llm.hf import sample_next

    torch.manual_seed(1)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    picks = sample_next(logits, 1.0, 0.9, candidates=2)  # nucleus {0, 1, 2}; candidates too few → full path
    freq = torch.bincount(picks, minlength=4).float() / len(picks)
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert torch.allclose(freq, expected, atol=0.015)
    picks = sample_next(logits, 1.0, 0.7, candidates=3)  # nucleus {0, 1}: inside the candidates
    freq = torch.bincount(picks, minlength=4).float() / len(picks)
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.015)


def test_unknown_loop_is_rejected(tiny_backend):
    import pytest

    with pytest.raises(ValueError, match="backend.loop='fast'.*pruned.*generate"):
        _with(tiny_backend, loop="fast")


def test_hf_stops_on_every_eos_id_of_the_generation_config(tiny_backend):
    """As vLLM does (Llama-3.1 and Qwen2.5 list several EOS ids): a reply ends at the first of them, counted."""
    from s2d.llm.hf import eos_ids

    model, tok = tiny_backend.model, tiny_backend.tokenizer
    extra = tok.convert_tokens_to_ids("<|im_start|>")
    model.generation_config.eos_token_id = [tok.eos_token_id, extra]
    assert eos_ids(model, tok) == {tok.eos_token_id, extra}
    a, b = tok("ab", add_special_tokens=False).input_ids
    comp = tiny_backend._completion([a, b, extra, a], prompt_tokens=3, stop=(), max_new_tokens=8)
    assert (comp.text, comp.completion_tokens, comp.truncated) == ("ab", 3, False)
