"""RDO loss terms (paper Algorithm 1; docs/algorithms.md §4) as pure functions on logits.

Context: Algorithm 1 trains a unit direction r with three terms:

- **L_abl**: with r ablated everywhere, the model should *answer* a harmful prompt
  (cross-entropy on the answer target t_answer);
- **L_add**: with α·r̂ added at layer l_add, it should *refuse* a harmless prompt
  (cross-entropy on the refusal target t_refusal);
- **L_ret**: with r ablated, a harmless prompt's output distribution over the retain
  window should not change (KL between clean and ablated logits).

Only target tokens are supervised (:func:`refusal_tl.steer.metrics.target_cross_entropy`):
labels are the input ids shifted by one, with every prompt position masked, so the first
supervised prediction is made at the last template token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Shaped
from torch import Tensor

from refusal_tl.profiles import RDO_WEIGHTS


def retain_kl(
    clean_logits: Float[Tensor, "batch window d_vocab"], ablated_logits: Float[Tensor, "batch window d_vocab"],
    mode: str = "paper", mask: Shaped[Tensor, "batch window"] | None = None,
) -> Float[Tensor, " batch"]:
    """Per-example KL over the retain window (last template token + t_retain positions).

    ``mode="paper"`` (default): KL(p_clean ‖ p_ablated) averaged over the row's window.
    ``mode="code"``: the authors' ``F.kl_div(log_softmax(clean), softmax(ablated), 'batchmean')``
    at micro-batch 1, i.e. KL(p_ablated ‖ p_clean) *summed* over the window (about
    ``window``× larger per unit λ; docs/algorithms.md §4).
    ``mask`` (1 inside each row's window) handles windows of different lengths.
    """
    if mode not in ("paper", "code"):
        raise ValueError(f"unknown retain KL mode {mode!r}: choose 'paper' or 'code'")
    log_clean = F.log_softmax(clean_logits.float(), dim=-1)
    log_abl = F.log_softmax(ablated_logits.float(), dim=-1)
    p, log_p, log_q = (log_clean.exp(), log_clean, log_abl) if mode == "paper" else (log_abl.exp(), log_abl, log_clean)
    kl = (p * (log_p - log_q)).sum(-1)  # [batch, window]
    mask = torch.ones_like(kl) if mask is None else mask.to(kl.dtype)
    total = (kl * mask).sum(1)
    return total / mask.sum(1).clamp(min=1) if mode == "paper" else total


def total_loss(
    parts: dict[str, Float[Tensor, "*batch"]], weights: dict[str, float] | None = None
) -> Float[Tensor, "*batch"]:
    """Weighted sum λ_abl·L_abl + λ_add·L_add + λ_ret·L_ret (defaults: ``profiles.RDO_WEIGHTS``)."""
    weights = {**RDO_WEIGHTS, **(weights or {})}
    return sum(weights[k] * v for k, v in parts.items())
