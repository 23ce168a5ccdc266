"""The representational-independence loss (paper §6; docs/algorithms.md §8) as a pure function.

For a candidate direction r and each earlier direction v ∈ V (DIM first), at the last prompt
token and over layers 𝓛 = 0 … ⌊0.9·L⌋−1:

    L_ind = Σ_v mean_l [ (cos(x^l, v) − cos(x̃^l_abl(r), v))² + (cos(x^l, r) − cos(x̃^l_abl(v), r))² ]

Only cos(x̃_abl(r), v) needs a forward that depends on r; the clean x and the x̃_abl(v) are
computed once per prompt (:class:`refusal_tl.repind.step.TraceCache`). Gradients flow through
cos(x, r) and cos(x̃_abl(v), r) as well, as in the official code.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from refusal_tl.repind.traces import cosines


def repind_loss(clean_v: Float[Tensor, "batch v layers"], abl_r_v: Float[Tensor, "batch v layers"],
                clean_r: Float[Tensor, "batch layers"], abl_v_r: Float[Tensor, "batch v layers"]
                ) -> Float[Tensor, " batch"]:
    """Per-example L_ind from the four cosine traces (summed over V, mean over layers)."""
    one_way = (clean_v - abl_r_v).square().mean(-1)
    other_way = (clean_r[:, None] - abl_v_r).square().mean(-1)
    return (one_way + other_way).sum(-1)


def repind_from_resid(r: Float[Tensor, " d_model"], V: Float[Tensor, "v d_model"],
                      clean: Float[Tensor, "batch layers d_model"], abl_v: Float[Tensor, "batch v layers d_model"],
                      abl_r: Float[Tensor, "batch layers d_model"]) -> Float[Tensor, " batch"]:
    """L_ind from residual streams: clean x, x̃ with each v ablated, x̃ with r ablated."""
    clean_v = cosines(clean[:, None], V[None, :, None, :].to(clean.device))   # [b, v, l]
    abl_r_v = cosines(abl_r[:, None], V[None, :, None, :].to(abl_r.device))   # [b, v, l]
    return repind_loss(clean_v, abl_r_v, cosines(clean, r), cosines(abl_v, r))
