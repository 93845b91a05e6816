"""transformers backend: batched chat generation on CPU or GPU with exact token counts."""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList, StaticCache

from s2d.llm.base import Prompt, encode_chat
from s2d.llm.model import ModelSource
from s2d.types import Completion, Sampling, request_seed

log = logging.getLogger(__name__)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, candidates: int = 256,
                uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else temperature + nucleus (top-p) sampling.

    Sampling inverts each row's cumulative distribution at its own uniform draw `uniforms[row]` (drawn
    from the global generator when None), so a row's token depends on its logits and its draw only, not
    on which other rows share the batch. The same distribution as transformers' temperature and top-p
    warpers, computed on the `candidates` most likely tokens instead of sorting the whole vocabulary
    (sorting 49k tokens costs more than the forward pass at batch 32 on a CPU). A row whose nucleus is
    not inside its candidates (their mass < top_p) is sampled from the full sorted vocabulary; both
    paths walk tokens in the same descending order, so they pick the same token for the same draw.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if uniforms is None:
        uniforms = torch.rand(logits.shape[0], device=logits.device)
    u = uniforms.to(logits.device, torch.float32)
    if top_p >= 1.0:
        return _invert(torch.softmax(logits, -1), u)
    k = min(candidates, logits.shape[-1])
    top, index = logits.topk(k, dim=-1)  # descending
    probs = (top - torch.logsumexp(logits, -1, keepdim=True)).exp()
    cum = probs.cumsum(-1)
    kept = (cum - probs) < top_p  # a token stays if the mass ranked above it is below top_p
    out = index.gather(1, _invert(probs * kept, u)[:, None]).squeeze(1)
    rest = (cum[:, -1] < top_p).nonzero().squeeze(1)  # rows whose nucleus reaches past the candidates
    if len(rest):
        full, full_index = logits[rest].sort(dim=-1, descending=True)
        p = torch.softmax(full, -1)
        pick = _invert(p * ((p.cumsum(-1) - p) < top_p), u[rest])
        out[rest] = full_index.gather(1, pick[:, None]).squeeze(1)
    return out


def _invert(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per row, the first index whose cumulative weight exceeds u × total weight (never a zero-weight index)."""
    cum = weights.cumsum(-1)
    pick = torch.searchsorted(cum, (u * cum[:, -1])[:, None], right=True).squeeze(1)
    # u × total can round up to the total itself: fall back to the last index that has weight.
    last = (weights > 0).cumsum(-1).argmax(-1)
    return torch.minimum(pick, last)


def sequence_uniforms(seeds: Sequence[int], n: int, steps: int) -> torch.Tensor:
    """[len(seeds) × n, steps] uniform draws: sequence k of request i reads only its own generator,
    seeded from (seeds[i], k), so its samples do not depend on batching or on the other requests."""
    rows = []
    for seed in seeds:
        for k in range(n):
            g = torch.Generator().manual_seed(request_seed(seed, k))
            rows.append(torch.rand(steps, generator=g))
    return torch.stack(rows) if rows else torch.zeros(0, steps)


class SeededSampling(LogitsProcessor):
    """`loop=generate` with temperature > 0: picks each row's token with `sample_next` and its own draws,
    then leaves only that token for transformers' greedy step, so both loops sample the same tokens."""

    def __init__(self, sampling: Sampling, uniforms: torch.Tensor, prompt_width: int):
        self.sampling, self.uniforms, self.prompt_width = sampling, uniforms, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_width
        tokens = sample_next(scores, self.sampling.temperature, self.sampling.top_p, uniforms=self.uniforms[:, step])
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tokens[:, None], 0.0)
        return out


def eos_ids(model, tokenizer) -> frozenset[int]:
    """Every token id that ends a reply: the tokenizer's EOS and the `eos_token_id` list of the model's
    generation config (Llama-3.1 and Qwen2.5 name several), as vLLM stops, so both backends count alike."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(model, "generation_config", None)  # library object: not every model carries one
    extra = getattr(gen, "eos_token_id", None)
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return frozenset(int(i) for i in ids if i is not None)


def _map_cache_rows(cache: StaticCache, fn) -> None:
    """Apply a batch-dimension operation (repeat, select) to every layer's preallocated keys and values."""
    for layer in cache.layers:
        layer.keys, layer.values = fn(layer.keys), fn(layer.values)


class HFBackend:
    """Runs prompts through a transformers causal LM in length-sorted, left-padded batches.

    `batch_size` counts sequences (prompts × n samples) per batch and `max_batch_tokens` caps their total
    length (prompt + new tokens, the KV cache at its largest), which is what bounds memory.
    `loop="pruned"` (default) decodes with s2d's loop, where finished sequences leave the batch;
    `loop="generate"` uses transformers' `generate` (every row runs until the longest ends).
    """

    def __init__(
        self,
        model: ModelSource,
        batch_size: int = 128,
        dtype: str = "float32",
        device: str = "cpu",
        threads: int | None = None,
        progress: bool = True,
        shared_prefill: bool = True,
        loop: str = "pruned",
        max_batch_tokens: int = 32768,
    ):
        if loop not in ("pruned", "generate"):
            raise ValueError(f"backend.loop={loop!r}: allowed values are 'pruned' and 'generate'")
        self.source = model
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.threads = threads
        self.progress = progress
        self.shared_prefill = shared_prefill
        self.loop = loop
        self.max_batch_tokens = max_batch_tokens
        self._model = None
        self._tok = None

    @property
    def tokenizer(self):
        self._ensure_loaded()
        return self._tok

    @property
    def model(self):
        self._ensure_loaded()
        return self._model

    def _ensure_loaded(self) -> None:
        if self._model is None:
            if self.threads:
                torch.set_num_threads(self.threads)
            self._model, self._tok = self.source.load(self.dtype)
            self._model.to(self.device)

    def release(self) -> None:
        """Free the model's memory (e.g. before training); the next call loads it again."""
        if self._model is not None:
            self._model = None
            self._tok = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @property
    def context_length(self) -> int | None:
        """Longest sequence (prompt + completion) the model takes."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, prompt: Prompt) -> list[int]:
        return encode_chat(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "",
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        """`sampling.n` completions per prompt; sample k of prompt i draws only from a stream seeded by
        (seeds[i], k) (default seeds[i] = request_seed(sampling.seed, i)), whatever the batching."""
        self._ensure_loaded()
        if seeds is None:
            seeds = [request_seed(sampling.seed, i) for i in range(len(prompts))]
        if len(seeds) != len(prompts):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt")
        encoded = [self.encode(p) for p in prompts]
        results: list[list[Completion] | None] = [None] * len(encoded)
        bar = tqdm(total=len(encoded), desc=desc or "generate", disable=not self.progress, leave=False)
        for idx in self._batches([len(e) for e in encoded], sampling):
            input_ids, attention = self._left_pad([encoded[i] for i in idx])
            uniforms, logprobs = None, []
            if sampling.temperature > 0:
                uniforms = sequence_uniforms([seeds[i] for i in idx], sampling.n, sampling.max_new_tokens)
                uniforms = uniforms.to(self.device)
            with torch.inference_mode():
                if self.loop == "pruned":
                    rows = self._decode(input_ids.to(self.device), attention.to(self.device), sampling, uniforms,
                                        logprobs)
                else:
                    out = self._generate_batch(input_ids.to(self.device), attention.to(self.device), sampling,
                                               uniforms)
                    rows = out[:, input_ids.shape[1]:].cpu().tolist()
            for r, i in enumerate(idx):
                # loop=generate reports no log-probabilities (Completion.logprob stays None).
                results[i] = [self._completion(rows[r * sampling.n + k], len(encoded[i]), sampling.stop,
                                               sampling.max_new_tokens,
                                               logprobs[r * sampling.n + k] if logprobs else None)
                              for k in range(sampling.n)]
            bar.update(len(idx))
        bar.close()
        return results  # type: ignore[return-value]

    def _batches(self, lengths: list[int], sampling: Sampling) -> list[list[int]]:
        """Prompt indices per batch, longest first, each batch within `batch_size` sequences and `max_batch_tokens`.

        Longest first: similar lengths share a batch (little padding) and memory peaks at the start.
        The token budget counts every sequence's full length (padded prompt + new tokens), which is
        what its KV cache holds at the end.
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            if batches:
                cur = batches[-1]
                rows = (len(cur) + 1) * sampling.n
                width = lengths[cur[0]] + sampling.max_new_tokens
                if rows <= self.batch_size and rows * width <= self.max_batch_tokens:
                    cur.append(i)
                    continue
            batches.append([i])
        return batches

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self._tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, ids in enumerate(seqs):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        return input_ids, attention

    def _decode(self, input_ids: torch.Tensor, attention: torch.Tensor, sampling: Sampling,
                uniforms: torch.Tensor | None = None, logprobs: list | None = None) -> list[list[int]]:
        """Prefill, then decode one token per step for the sequences still running; finished ones leave the batch.

        transformers' `generate` keeps a finished sequence in the batch until the longest one ends, so a
        batch of samples whose lengths vary pays for the longest on every row. Here a sequence leaves
        the batch (and its KV cache rows) when it emits EOS or a stop string. With n > 1 and
        `shared_prefill`, each prompt is prefilled once and its cache copied to its n samples.
        Returns the generated ids of each sequence (prompt-major, n per prompt), EOS included.
        `uniforms[seq, step]` is sequence seq's draw at that step (temperature > 0). A `logprobs` list is
        filled with each sequence's per-token log-probabilities (temperature 1), aligned with its ids.
        """
        model, n = self._model, sampling.n
        if n > 1 and not self.shared_prefill:
            input_ids, attention = input_ids.repeat_interleave(n, 0), attention.repeat_interleave(n, 0)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        # Preallocated: a growing cache re-copies every layer's keys and values at each step, which
        # cost more than the matmuls at batch 128 here (measured in benchmarks/).
        cache = StaticCache(config=model.config, max_cache_len=input_ids.shape[1] + sampling.max_new_tokens)
        out = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, cache=cache,
                    use_cache=True, logits_to_keep=1)
        logits, pos = out.logits[:, -1], positions[:, -1]
        if n > 1 and self.shared_prefill:
            _map_cache_rows(cache, lambda t: t.repeat_interleave(n, 0))
            logits, attention, pos = (t.repeat_interleave(n, 0) for t in (logits, attention, pos))
        eos = eos_ids(self._model, self._tok)
        live: list[int | None] = list(range(logits.shape[0]))  # sequence of each batch row; None: finished
        generated: list[list[int]] = [[] for _ in live]
        if logprobs is not None:
            logprobs.extend([] for _ in live)
        stop_window = max((len(s) for s in sampling.stop), default=0) + 4  # tokens of tail text to search
        for step in range(sampling.max_new_tokens):
            draws = None
            if uniforms is not None:  # each row's own draw; rows already finished take any (output ignored)
                draws = uniforms[[0 if seq is None else seq for seq in live], step]
            tokens = sample_next(logits, sampling.temperature, sampling.top_p, uniforms=draws)
            if logprobs is not None:  # one gather and one logsumexp per step: cheap next to the forward pass
                chosen = (logits.float().gather(1, tokens[:, None]).squeeze(1)
                          - torch.logsumexp(logits.float(), -1)).tolist()
            for row, (seq, t) in enumerate(zip(live, tokens.tolist())):
                if seq is None:
                    continue
                generated[seq].append(t)
                if logprobs is not None:
                    logprobs[seq].append(chosen[row])
                if t in eos or (sampling.stop and self._hits_stop(generated[seq], sampling.stop, stop_window)):
                    live[row] = None
            keep = [row for row, seq in enumerate(live) if seq is not None]
            if not keep or step == sampling.max_new_tokens - 1:
                break
            # Dropping rows copies the whole cache, so finished rows ride along (output ignored) until
            # they are a quarter of the batch.
            if 4 * (len(live) - len(keep)) >= len(live):
                rows = torch.tensor(keep, device=tokens.device)
                _map_cache_rows(cache, lambda t: t[rows])
                attention, pos, tokens = attention[rows], pos[rows], tokens[rows]
                live = [live[r] for r in keep]
            attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
            pos = pos + 1
            out = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=pos[:, None], cache=cache,
                        use_cache=True)
            logits = out.logits[:, -1]
        return generated

    def _hits_stop(self, ids: list[int], stop: Sequence[str], window: int) -> bool:
        tail = self._tok.decode(ids[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    def _generate_batch(self, input_ids, attention, sampling: Sampling, uniforms: torch.Tensor | None = None):
        """`loop=generate`: transformers' `generate`; with n > 1 each prompt is prefilled once and its cache repeated.

        Sampling goes through `SeededSampling` (transformers' own sampler draws from one stream for the
        whole batch), so a row's tokens are the ones the pruned loop samples for it.
        """
        model, n = self._model, sampling.n
        gen_kwargs = self._generation_kwargs(sampling)
        if sampling.temperature > 0:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None, logits_processor=
                              LogitsProcessorList([SeededSampling(sampling, uniforms, input_ids.shape[1])]))
        if n == 1 or not self.shared_prefill:
            # Rows repeated here rather than by num_return_sequences, which transformers refuses without do_sample.
            return model.generate(input_ids=input_ids.repeat_interleave(n, 0),
                                  attention_mask=attention.repeat_interleave(n, 0), **gen_kwargs)
        # Prefill all but the last prompt token; generate() then feeds that token against the shared cache.
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        prefix = model(input_ids=input_ids[:, :-1], attention_mask=attention[:, :-1],
                       position_ids=positions[:, :-1], use_cache=True)
        cache = prefix.cache
        cache.batch_repeat_interleave(n)
        return model.generate(
            input_ids=input_ids.repeat_interleave(n, dim=0),
            attention_mask=attention.repeat_interleave(n, dim=0),
            cache=cache,
            **gen_kwargs,
        )

    def _generation_kwargs(self, sampling: Sampling) -> dict:
        tok = self._tok
        kw: dict = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": sorted(eos_ids(self._model, self._tok)),
        }
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kw.update(stop_strings=list(sampling.stop), tokenizer=tok)
        return kw

    def _completion(self, ids: list[int], prompt_tokens: int, stop: Sequence[str],
                    max_new_tokens: int | None = None, token_logprobs: Sequence[float] | None = None) -> Completion:
        """Cut at the end of generation and count only tokens the model produced.

        The pad token may equal EOS, so the first EOS ends the sequence; it was generated (and is
        counted) unless generation had already ended on a stop string. A stop string ends the count at
        the token that completed it (what the pruned loop generated; `generate` may run on past it).
        `truncated`: no EOS and no stop string within `max_new_tokens` (None: the ids are all there was).
        `logprob`: the sum of `token_logprobs` over the counted tokens (None without them).
        """
        eos = eos_ids(self._model, self._tok)
        end = next((i for i, t in enumerate(ids) if t in eos), len(ids))
        text = self._tok.decode(ids[:end], skip_special_tokens=True)
        hits = [s for s in stop if s in text]
        if hits:
            cut = min(text.find(s) for s in hits)
            count = self._stop_end(ids[:end], hits)
            text = text[:cut]
        else:
            count = end + (1 if end < len(ids) else 0)
        truncated = not hits and end == len(ids) and (max_new_tokens is None or len(ids) >= max_new_tokens)
        logprob = float(sum(token_logprobs[:count])) if token_logprobs is not None else None
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=count, truncated=truncated,
                          logprob=logprob)

    def _stop_end(self, ids: list[int], stop: Sequence[str]) -> int:
        """Fewest leading tokens of `ids` whose text holds a stop string (binary search: a longer prefix keeps it)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in self._tok.decode(ids[:mid], skip_special_tokens=True) for s in stop):
                hi = mid
            else:
                lo = mid + 1
        return hi
