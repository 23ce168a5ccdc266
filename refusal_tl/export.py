"""Export a weight-orthogonalised model (docs/algorithms.md §10): the refusal direction baked
into the weights, so plain ``transformers`` runs the ablated model without hooks; or any
abliteration edit (a trial of ``refusal-tl search``, docs/algorithms.md §14).

W ← W − r̂ r̂ᵀ W on every write into the residual stream (embedding, attention ``o_proj``,
MLP ``down_proj``; :func:`refusal_tl.steer.hooks.orthogonalize_weights`). The unembedding is
*not* changed: a model whose input and output embeddings are tied is untied first, otherwise
projecting the embedding would also project the unembedding, which ablation hooks never touch.

``--format lora`` writes the edit as a peft LoRA adapter instead (:mod:`refusal_tl.steer.lora`:
exact for projections, a stated rank for norm-preserving edits), loaded on the unedited model with
``PeftModel.from_pretrained(base, OUT)``.

``--format gguf`` writes the same weights as one GGUF file (``OUT/model.gguf``, F32 or F16, via
the ``gguf`` package; :mod:`refusal_tl.gguf_file`) that llama.cpp runs and transformers loads with
``from_pretrained(OUT, gguf_file="model.gguf")``.

The export is built in a temporary sibling folder and renamed onto ``out`` at the end, so an
interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import AutoModelForCausalLM

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalDirection
from refusal_tl.gguf_file import check_gguf, write_gguf
from refusal_tl.io import ensure_dir, temp_dir
from refusal_tl.model import RefusalModel
from refusal_tl.model.bundled import bundled_dir
from refusal_tl.steer.edit import Edit, apply_edit
from refusal_tl.steer.lora import lora_model

FORMATS = ("hf", "gguf", "lora")
GGUF_NAME = "model.gguf"
INFO = "refusal_tl_export.json"


def fresh_hf(model: RefusalModel, untie: bool = True):
    """A fresh HF model with ``model``'s weights (untied unless ``untie=False``)."""
    source = model.hf_model
    config = source.config.__class__.from_dict(source.config.to_dict())
    config.tie_word_embeddings = config.tie_word_embeddings and not untie
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
    if not untie:
        hf.tie_weights()
    return hf.eval()


def direction_edit(model: RefusalModel, directions: list[RefusalDirection]) -> Edit:
    """Standard ablation of the directions' span (one after another after Gram–Schmidt)."""
    for d in directions:
        d.check_width(model.d_model)
    return Edit.ablation(torch.stack(_orthonormal([d.vector for d in directions])), model.n_layers)


def baked_model(model: RefusalModel, directions: list[RefusalDirection] | Edit):
    """A fresh HF model with ``model``'s weights, untied, with the edit (or every direction's span
    projected out of the residual writes) baked in."""
    edit = directions if isinstance(directions, Edit) else direction_edit(model, directions) if directions else None
    hf = fresh_hf(model)
    if edit is not None:
        apply_edit(hf, edit)
    return hf


def export_model(model: RefusalModel, directions: RefusalDirection | list[RefusalDirection],
                 out: str | Path, fmt: str = "hf", gguf_dtype: str = "f32", lora_rank: int = 3) -> Path:
    """Write the orthogonalised model to ``out`` (a folder) and return it.

    ``hf``: ``model.safetensors`` + config + tokenizer, loadable with
    ``AutoModelForCausalLM.from_pretrained(out)``. ``gguf``: ``out/model.gguf`` (tensors in
    ``gguf_dtype``, ``f32`` or ``f16``), loadable with ``from_pretrained(out, gguf_file="model.gguf")``,
    ``load_model("out/model.gguf")`` or llama.cpp. ``lora``: a peft adapter (exact, rank 1 per direction).
    """
    directions = [directions] if isinstance(directions, RefusalDirection) else list(directions)
    if not directions:
        raise RefusalTLError("export needs at least one direction (--direction FILE).")
    meta = {"directions": [d.metadata() for d in directions],
            "how": "W <- W - r r^T W on embed_tokens, o_proj, down_proj; lm_head untied and unchanged"}
    return export_edit(model, direction_edit(model, directions), out, fmt, gguf_dtype, lora_rank, meta)


def export_edit(model: RefusalModel, edit: Edit, out: str | Path, fmt: str = "hf", gguf_dtype: str = "f32",
                lora_rank: int = 3, meta: dict | None = None) -> Path:
    """Write ``edit`` baked into the weights (``hf``, ``gguf``) or as a LoRA adapter (``lora``) to ``out``."""
    if fmt not in FORMATS:
        raise RefusalTLError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    edit.width_check(model.d_model)
    if fmt == "gguf":
        check_gguf(model.hf_model.config, model.tokenizer, gguf_dtype)
    out = Path(out)
    if out.exists() and not (out / INFO).is_file():
        raise RefusalTLError(f"{out} exists and is not a refusal_tl export; choose another --out.")
    ensure_dir(out.parent)
    tmp = temp_dir(out.parent, f".{out.name}.export-")
    info = {"source_model": model.name, "source_weights_sha": model.weights_sha, "dtype": model.dtype_name,
            "format": fmt, **({"gguf_dtype": gguf_dtype} if fmt == "gguf" else {}), **(meta or {})}
    try:
        if fmt == "lora":
            info.update(_write_lora(model, edit, tmp, lora_rank))
        else:
            hf = baked_model(model, edit)
            if fmt == "gguf":
                write_gguf(hf, model.tokenizer, tmp / GGUF_NAME, gguf_dtype, name=f"{model.name} (refusal ablated)")
            else:
                hf.save_pretrained(tmp, safe_serialization=True)
                model.tokenizer.save_pretrained(tmp)
        (tmp / INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
        if out.exists():  # an earlier export: replaced
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_lora(model: RefusalModel, edit: Edit, folder: Path, rank: int) -> dict:
    peft_model, factors = lora_model(fresh_hf(model, untie=False), edit, rank)
    base = str(bundled_dir()) if model.spec == "bundled" else model.spec
    peft_model.peft_config["default"].base_model_name_or_path = base
    peft_model.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    errors = [f.error for f in factors.values()]
    return {"lora_rank": {n: f.A.shape[0] for n, f in factors.items()},
            "lora_relative_error": {"max": max(errors), "mean": sum(errors) / len(errors)},
            "load": f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained('{base}'), '<this folder>')"}


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

