"""The tiny random model (`model=tiny`): a 2-layer Llama, 32 wide, with one token per printable character,
built by code on first use and cached. Its replies are noise (they never hold an answer line), but every stage
runs on it in seconds with nothing to install or download: it is the model of `experiment=tiny` and of the
tests (tests/conftest.py builds the same weights), never one to read results from."""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from s2d.llm.model import ModelSource, local_model_digest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Bump when build() changes what it writes: a cached copy under another version is never read.
VERSION = 1


def char_tokenizer():
    """One token per character, so the token count of a known string is its length."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    chars = list(string.printable)
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(directory: Path) -> Path:
    """A randomly initialised (seed 0) 2-layer Llama with the char tokenizer, saved like any local model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return Path(directory)


def cached(cache_dir: Path) -> Path:
    """The built model under `cache_dir` (built once; a concurrent build of the same files is harmless)."""
    target = Path(cache_dir) / f"tiny-v{VERSION}"
    if (target / "config.json").exists():
        return target
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-tiny-"))
    try:
        build(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: its copy is the same model
        if not (target / "config.json").exists():
            raise
    return target


@dataclass
class TinyModel(ModelSource):
    """`model=tiny`: the tiny model built into `cache_dir` on first use; `name_or_path` set: that directory."""

    def resolve(self) -> tuple[str, str | None]:
        if self.name_or_path:
            return str(self.name_or_path), None
        return str(cached(Path(self.cache_dir or Path.home() / ".cache" / "s2d" / "models"))), None

    def identity(self) -> dict:
        src, _ = self.resolve()
        return {"name": self.name, "source": f"s2d.llm.tiny v{VERSION}", "files_sha256": local_model_digest(Path(src))}
