"""An :class:`~refusal_tl.steer.edit.Edit` as a peft LoRA adapter (docs/algorithms.md §14).

Each edited writer W (``o_proj``, ``down_proj``; the embedding when the edit touches it) gets
ΔW = W' − W as lora_B · lora_A (scaling 1):

- **projections** (any kernel weight w, a direction or a k-span B): ΔW = −w Bᵀ(B W), exactly
  rank k: lora_B = −w Bᵀ, lora_A = B W. The adapter equals the hooks up to rounding.
- **norm-preserving** (MPOA) edits rescale every output row, so ΔW has full rank; the adapter keeps
  its best rank-r approximation (SVD), r = ``rank`` (default 3, heretic's), and reports the relative
  Frobenius error of each module.

``PeftModel.from_pretrained(base, DIR)`` loads it on the unedited base model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from peft import LoraConfig, get_peft_model
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.steer.edit import Edit, _maps, output_map, writers

EMBED = "model.embed_tokens"


@dataclass
class LoraFactor:
    """ΔW ≈ B @ A for one module, with the approximation's relative Frobenius error."""

    B: Float[Tensor, "d_out rank"]
    A: Float[Tensor, "rank d_in"]
    error: float


def _names(hf_model) -> dict[tuple[int, str], str]:
    mods = writers(hf_model)
    ids = {id(m): k for k, m in mods.items()}
    return {ids[id(m)]: n.replace("._original_component", "") for n, m in hf_model.named_modules() if id(m) in ids}


def lora_factors(hf_model, edit: Edit, rank: int = 3) -> dict[str, LoraFactor]:
    """Module name → its LoRA factors for ``edit`` on ``hf_model``'s (unedited) weights."""
    if rank < 1:
        raise RefusalTLError(f"--lora-rank must be ≥ 1, got {rank}.")
    mods, names = writers(hf_model), _names(hf_model)
    out = {}
    for key, kw in _maps(hf_model, edit).items():
        W = mods[key].weight.detach().float()
        if mods[key].bias is not None:
            raise RefusalTLError("a LoRA adapter cannot carry a bias edit; export the merged model (--format hf).")
        if not edit.norm_preserving:
            b = kw["basis"].float()
            out[names[key]] = LoraFactor(-kw["weight"] * b.T, b @ W, 0.0)
            continue
        delta = output_map(W.T, **kw).T - W
        U, S, Vh = torch.linalg.svd(delta.double(), full_matrices=False)
        r = min(rank, len(S))
        root = S[:r].sqrt()
        B, A = (U[:, :r] * root).float(), (root[:, None] * Vh[:r]).float()
        err = float((delta.double() - B.double() @ A.double()).norm() / delta.double().norm().clamp_min(1e-30))
        out[names[key]] = LoraFactor(B, A, err)
    if edit.embed:
        E = hf_model.get_input_embeddings().weight.detach().float()  # [vocab, d]
        b = edit.bases[0].float()
        # peft's embedding LoRA adds (B @ A)ᵀ: ΔEᵀ = −w Bᵀ (B Eᵀ)
        out[EMBED] = LoraFactor(-edit.embed * b.T, b @ E.T, 0.0)
    return out


def lora_model(hf_model, edit: Edit, rank: int = 3):
    """``hf_model`` wrapped by peft with the edit's adapter set (exact for projections)."""
    factors = lora_factors(hf_model, edit, rank)
    ranks = {n: f.A.shape[0] for n, f in factors.items()}
    r0 = max(ranks.values())
    config = LoraConfig(r=r0, lora_alpha=r0, lora_dropout=0.0, target_modules=sorted(ranks), bias="none",
                        rank_pattern={n: k for n, k in ranks.items()}, alpha_pattern={n: k for n, k in ranks.items()})
    peft_model = get_peft_model(hf_model, config)
    named = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for name, f in factors.items():
            module = named[name]
            if name == EMBED:
                module.lora_embedding_A["default"].copy_(f.A.to(module.lora_embedding_A["default"].dtype))
                module.lora_embedding_B["default"].copy_(f.B.to(module.lora_embedding_B["default"].dtype))
            else:
                module.lora_A["default"].weight.copy_(f.A.to(module.lora_A["default"].weight.dtype))
                module.lora_B["default"].weight.copy_(f.B.to(module.lora_B["default"].weight.dtype))
    return peft_model, factors
