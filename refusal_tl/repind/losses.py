"""The representational-independence loss (paper §6; docs/algorithms.md §8) as a pure function.

For a candidate direction r and each earlier direction v ∈ V (DIM first), at the last prompt
token (or averaged over the prompt's tokens, paper App. A) and over layers 𝓛 = 0 … ⌊0.9·L⌋−1:

    L_ind = Σ_v mean_l [ (cos(x^l, v) − cos(x̃^l_abl(r), v))² + (cos(x^l, r) − cos(x̃^l_abl(v), r))² ]

Only cos(x̃_abl(r), v) needs a forward that depends on r; the clean x and the x̃_abl(v) are
computed once per prompt (:class:`refusal_tl.repind.step.TraceCache`). Gradients flow through
cos(x, r) and cos(x̃_abl(v), r) as well, as in the official code.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.repind.traces import cosines


def repind_loss(clean_v: Float[Tensor, "batch v layers *tokens"], abl_r_v: Float[Tensor, "batch v layers *tokens"],
                clean_r: Float[Tensor, "batch layers *tokens"], abl_v_r: Float[Tensor, "batch v layers *tokens"],
                mask: Float[Tensor, "batch tokens"] | None = None) -> Float[Tensor, " batch"]:
    """Per-example L_ind from the four cosine traces (summed over V, mean over layers).

    With a token axis and its ``mask`` (App. A's "average over tokens"), each layer's squared
    differences are first averaged over the tokens the mask keeps."""
    per = (clean_v - abl_r_v).square() + (clean_r[:, None] - abl_v_r).square()
    if mask is not None:
        m = mask[:, None, None, :].to(per)
        per = torch.where(m > 0, per, 0.0).sum(-1) / m.sum(-1)
    return per.mean(-1).sum(-1)


def repind_from_resid(r: Float[Tensor, " d_model"], V: Float[Tensor, "v d_model"],
                      clean: Float[Tensor, "batch layers *tokens d_model"],
                      abl_v: Float[Tensor, "batch v layers *tokens d_model"],
                      abl_r: Float[Tensor, "batch layers *tokens d_model"],
                      mask: Float[Tensor, "batch tokens"] | None = None) -> Float[Tensor, " batch"]:
    """L_ind from residual streams: clean x, x̃ with each v ablated, x̃ with r ablated (each at the
    last token, or with a token axis averaged under ``mask``)."""
    vs = V.reshape(1, V.shape[0], *([1] * (clean.dim() - 2)), V.shape[-1]).to(clean.device)
    clean_v, abl_r_v = cosines(clean[:, None], vs), cosines(abl_r[:, None], vs)   # [b, v, l, (t)]
    return repind_loss(clean_v, abl_r_v, cosines(clean, r), cosines(abl_v, r), mask)
