"""Export a weight-orthogonalised model (docs/algorithms.md §10): the refusal direction baked
into the weights, so plain ``transformers`` runs the ablated model without hooks.

W ← W − r̂ r̂ᵀ W on every write into the residual stream (embedding, attention ``o_proj``,
MLP ``down_proj``; :func:`refusal_tl.steer.hooks.orthogonalize_weights`). The unembedding is
*not* changed: a model whose input and output embeddings are tied is untied first, otherwise
projecting the embedding would also project the unembedding, which ablation hooks never touch.

The export is built in a temporary sibling folder and renamed onto ``out`` at the end, so an
interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalDirection
from refusal_tl.io import ensure_dir
from refusal_tl.model import RefusalModel
from refusal_tl.steer.hooks import orthogonalize_weights

FORMATS = ("hf",)
INFO = "refusal_tl_export.json"


def baked_model(model: RefusalModel, directions: list[RefusalDirection]):
    """A fresh HF model with ``model``'s weights, untied, with every direction's span projected
    out of the residual writes (one after another after Gram–Schmidt, i.e. the span projection)."""
    from transformers import AutoModelForCausalLM

    for d in directions:
        d.check_width(model.d_model)
    source = model.hf_model
    config = source.config.__class__.from_dict(source.config.to_dict())
    config.tie_word_embeddings = False
    dtype = next(source.parameters()).dtype
    hf = AutoModelForCausalLM.from_config(config, dtype=dtype)  # random init, overwritten below
    # the bridge renames wrapped modules (``…._original_component``) and adds aliases: keep HF's names
    state = {n.replace("._original_component", ""): p.detach() for n, p in source.state_dict().items()}
    if "lm_head.weight" not in state:  # tied in the source: the unembedding is the embedding
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    wanted = hf.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise RefusalTLError(f"cannot rebuild {model.name} for export: no weights for {', '.join(missing[:3])}.")
    hf.load_state_dict({k: state[k] for k in wanted})
    hf.eval()
    for unit in _orthonormal([d.vector for d in directions]):
        orthogonalize_weights(hf, unit)
    return hf


def export_model(model: RefusalModel, directions: RefusalDirection | list[RefusalDirection],
                 out: str | Path, fmt: str = "hf") -> Path:
    """Write the orthogonalised model to ``out`` (a folder) and return it.

    ``hf``: ``model.safetensors`` + config + tokenizer, loadable with
    ``AutoModelForCausalLM.from_pretrained(out)``. For a GGUF file, convert that folder with
    llama.cpp's ``convert_hf_to_gguf.py``.
    """
    if fmt not in FORMATS:
        raise RefusalTLError(f"unknown export format {fmt!r}: only 'hf' is written (convert it to GGUF with "
                             "llama.cpp's convert_hf_to_gguf.py).")
    directions = [directions] if isinstance(directions, RefusalDirection) else list(directions)
    if not directions:
        raise RefusalTLError("export needs at least one direction (--direction FILE).")
    out = Path(out)
    if out.exists() and not (out / INFO).is_file():
        raise RefusalTLError(f"{out} exists and is not a refusal_tl export; choose another --out.")
    ensure_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        hf = baked_model(model, directions)
        hf.save_pretrained(tmp, safe_serialization=True)
        model.tokenizer.save_pretrained(tmp)
        info = {"source_model": model.name, "source_weights_sha": model.weights_sha, "format": fmt,
                "directions": [d.metadata() for d in directions],
                "how": "W <- W - r r^T W on embed_tokens, o_proj, down_proj; lm_head untied and unchanged"}
        (tmp / INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
        if out.exists():  # an earlier export: replaced
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _orthonormal(vectors: list[Float[Tensor, " d_model"]]) -> list[Float[Tensor, " d_model"]]:
    """Gram–Schmidt: projecting out these one by one equals projecting out the span."""
    units: list[torch.Tensor] = []
    for v in vectors:
        v = v.detach().double()
        for u in units:
            v = v - (v @ u) * u
        if v.norm() < 1e-8:
            raise RefusalTLError("the directions to export are linearly dependent; drop the redundant one.")
        units.append(v / v.norm())
    return [u.float() for u in units]

