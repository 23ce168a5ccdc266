"""RDO loss terms (paper Algorithm 1; docs/algorithms.md §4) as pure functions on logits.

Context: Algorithm 1 trains a unit direction r with three terms:

- **L_abl**: with r ablated everywhere, the model should *answer* a harmful prompt
  (cross-entropy on the answer target t_answer);
- **L_add**: with α·r̂ added at layer l_add, it should *refuse* a harmless prompt
  (cross-entropy on the refusal target t_refusal);
- **L_ret**: with r ablated, a harmless prompt's output distribution over the retain
  window should not change (KL between clean and ablated logits).

Only target tokens are supervised: labels are the input ids shifted by one, with every
prompt position masked (``IGNORE``), so the first supervised prediction is made at the
last template token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float, Int, Shaped
from torch import Tensor

from refusal_tl.profiles import RDO_WEIGHTS

IGNORE = -100


def target_labels(ids: Int[Tensor, "batch pos"], target_mask: Int[Tensor, "batch pos"]) -> Int[Tensor, "batch pos"]:
    """Next-token labels supervising only target tokens.

    ``labels[b, t] = ids[b, t + 1]`` where token t + 1 is a target token, else ``IGNORE``.
    The last position has no next token and is always ``IGNORE``.
    """
    labels = torch.full_like(ids, IGNORE)
    nxt_is_target = target_mask[:, 1:].bool()
    labels[:, :-1] = torch.where(nxt_is_target, ids[:, 1:], torch.full_like(ids[:, 1:], IGNORE))
    return labels


def target_cross_entropy(
    logits: Float[Tensor, "batch pos d_vocab"], labels: Int[Tensor, "batch pos"]
) -> Float[Tensor, " batch"]:
    """Per-example mean cross-entropy over its supervised (non-``IGNORE``) positions.

    One value per row, so a batch of rows gives exactly the losses of micro-batch 1 (the
    official setting): average the rows for the batch loss. A row without targets gives 0.
    """
    b, p, v = logits.shape
    flat = F.cross_entropy(rearrange(logits.float(), "b p v -> (b p) v"), labels.flatten(),
                           ignore_index=IGNORE, reduction="none")
    nll = rearrange(flat, "(b p) -> b p", b=b)
    n = (labels != IGNORE).sum(1)
    return nll.sum(1) / n.clamp(min=1)


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
