"""A stand-in for the vllm package with the same call shapes, for testing s2d's engine process on CPU.

Replies are a deterministic function of the request (prompt length, sample index, adapter), so a test
can check what reached the engine and what came back."""

from types import SimpleNamespace

CREATED = []


class SamplingParams:
    def __init__(self, n=1, temperature=1.0, top_p=1.0, max_tokens=16, seed=None, stop=None):
        self.n, self.temperature, self.top_p, self.max_tokens, self.seed, self.stop = (
            n, temperature, top_p, max_tokens, seed, stop)


class LLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def generate(self, requests, params, lora_request=None, use_tqdm=True):
        outs = []
        for r in requests:
            ids = r["prompt_token_ids"]
            tag = f" lora={lora_request.lora_name}" if lora_request is not None else ""
            outputs = [SimpleNamespace(text=f" len={len(ids)} k={k} t={params.temperature} max={params.max_tokens}"
                                            f"{tag} tp={self.kwargs['tensor_parallel_size']}",
                                       token_ids=list(range(min(params.max_tokens, 3 + k))))
                       for k in range(params.n)]
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=outputs))
        return outs
