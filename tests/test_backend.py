"""The HF backend: exact token counts, n samples per prompt, order preserved across length-sorted batches."""

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
