"""transformers backend: batched chat generation on CPU or GPU with exact token counts."""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from tqdm.auto import tqdm

from s2d.llm.base import Prompt, as_messages
from s2d.llm.model import ModelSource
from s2d.types import Completion, Sampling

log = logging.getLogger(__name__)


def encode_chat(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a chat prompt, ready for the assistant's reply (shared by generation and training)."""
    text = tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


class HFBackend:
    """Runs prompts through `model.generate` in length-sorted, left-padded batches.

    `batch_size` counts sequences (prompts × n samples), which is what bounds memory and speed.
    """

    def __init__(
        self,
        model: ModelSource,
        batch_size: int = 32,
        dtype: str = "float32",
        device: str = "cpu",
        threads: int | None = None,
        progress: bool = True,
        shared_prefill: bool = True,
    ):
        self.source = model
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.threads = threads
        self.progress = progress
        self.shared_prefill = shared_prefill
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

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "") -> list[list[Completion]]:
        self._ensure_loaded()
        tok, model = self._tok, self._model
        encoded = [self.encode(p) for p in prompts]
        # Longest first: similar lengths share a batch (little padding), and memory peaks at the start.
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        per_batch = max(1, self.batch_size // sampling.n)
        batches = [order[i : i + per_batch] for i in range(0, len(order), per_batch)]
        results: list[list[Completion] | None] = [None] * len(encoded)
        gen_kwargs = self._generation_kwargs(sampling)
        bar = tqdm(total=len(encoded), desc=desc or "generate", disable=not self.progress, leave=False)
        for b, idx in enumerate(batches):
            width = max(len(encoded[i]) for i in idx)
            input_ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids = encoded[i]
                input_ids[row, width - len(ids) :] = torch.tensor(ids)
                attention[row, width - len(ids) :] = 1
            # Seeded per batch so a rerun with the same inputs and batch size samples the same tokens.
            torch.manual_seed(sampling.seed * 100_003 + b)
            with torch.inference_mode():
                out = self._generate_batch(input_ids.to(self.device), attention.to(self.device), sampling.n,
                                           gen_kwargs)
            new = out[:, width:].cpu()
            for row, i in enumerate(idx):
                results[i] = [
                    self._completion(new[row * sampling.n + k].tolist(), len(encoded[i]), sampling.stop)
                    for k in range(sampling.n)
                ]
            bar.update(len(idx))
        bar.close()
        return results  # type: ignore[return-value]

    def _generate_batch(self, input_ids, attention, n: int, gen_kwargs: dict):
        """Generate n continuations per row; with n > 1 each prompt is prefilled once and its cache repeated."""
        model = self._model
        if n == 1 or not self.shared_prefill:
            return model.generate(input_ids=input_ids, attention_mask=attention, num_return_sequences=n, **gen_kwargs)
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
            "eos_token_id": tok.eos_token_id,
        }
        if sampling.temperature > 0:
            kw.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kw.update(stop_strings=list(sampling.stop), tokenizer=tok)
        return kw

    def _completion(self, ids: list[int], prompt_tokens: int, stop: Sequence[str]) -> Completion:
        """Cut at the end of generation and count only tokens the model produced.

        The pad token may equal EOS, so the first EOS ends the sequence; it was generated (and is
        counted) unless generation had already ended on a stop string.
        """
        eos = self._tok.eos_token_id
        end = ids.index(eos) if eos in ids else len(ids)
        text = self._tok.decode(ids[:end], skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
        count = end + (1 if end < len(ids) and cut < 0 else 0)
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=count)
