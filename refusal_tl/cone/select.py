"""Picking one trained cone basis (docs/algorithms.md §6).

``lowest_loss`` (official default): the basis with the lowest unweighted training loss,
which must pass the filters below (the official run stops with an assertion; here a
one-line error that names the fix). ``last20`` (the authors' code option): the last 20
saved bases, the admissible one with the lowest mean sample bypass score.

Filters, on ``n_fixed`` fixed cone samples (seed 42) scaled by α, on the validation sets:

- a basis is *admissible* when every basis vector's induce score is ≥ 0 (ignored when no
  candidate is admissible);
- its samples must keep the largest per-sample KL ≤ 0.1 and a mean induce score ≥ 0 (the
  induce part is relaxed when every candidate fails it);
- among the survivors, the lowest mean sample bypass score wins.
"""

from __future__ import annotations

import logging

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.scorer import Scorer
from refusal_tl.geometry.cone import orthant_weights
from refusal_tl.optim import SphereRun
from refusal_tl.rdo.select import RdoSelection

log = logging.getLogger(__name__)
FIXED_SEED = 42


class ConeSelection(RdoSelection):
    """The chosen step (index into ``SphereRun.vectors``), every candidate's scores (``table``)
    and the filters that were relaxed; as for RDO."""

    @property
    def chosen(self) -> dict:
        return next(row for row in self.table if row["step"] == self.step)


def fixed_samples(basis: Float[Tensor, "dims d_model"], n: int, seed: int = FIXED_SEED) -> Float[Tensor, "n d_model"]:
    """The selection's fixed unit samples of the cone spanned by ``basis``."""
    r = orthant_weights(n, basis.shape[0], seed).to(basis) @ basis
    return r / r.norm(dim=-1, keepdim=True)


def score_basis(scorer: Scorer, basis: Float[Tensor, "dims d_model"], alpha: float, layer: int,
                n_fixed: int) -> dict:
    """Bypass and induce of each basis vector, and the fixed samples' KL, bypass and induce (scaled by α)."""
    basis = basis.float().to(scorer.model.device)
    samples = alpha * fixed_samples(basis, n_fixed)
    every = torch.cat([alpha * basis, samples])
    bypass, induce = scorer.bypass_many(every), scorer.induce_many(every, layer)
    kl = scorer.kl_many(samples)
    n = basis.shape[0]
    return dict(basis_bypass=bypass[:n].tolist(), basis_induce=induce[:n].tolist(),
                sample_bypass=float(bypass[n:].mean()), sample_induce=float(induce[n:].mean()),
                sample_bypass_std=float(bypass[n:].std()) if n_fixed > 1 else 0.0, sample_kl_max=float(kl.max()),
                sample_kl_mean=float(kl.mean()))


def select_cone(scorer: Scorer, run: SphereRun, alpha: float, layer: int, how: str = "lowest_loss",
                n_fixed: int = 64, kl_threshold: float = 0.1, last: int = 20) -> ConeSelection:
    """Score the candidates (the lowest-loss basis, or the last ``last``) and pick one (module doc)."""
    if how == "lowest_loss":
        steps = [run.lowest_loss_step]
    elif how == "last20":
        steps = list(range(max(0, len(run.vectors) - last), len(run.vectors)))
    else:
        raise RefusalTLError(f"unknown cone selection {how!r}: choose lowest_loss or last20.")
    table = [dict(step=i, train_loss=run.history[i]["train_loss"],
                  **score_basis(scorer, run.vectors[i], alpha, layer, n_fixed)) for i in steps]
    relaxed: tuple[str, ...] = ()
    pool = [row for row in table if min(row["basis_induce"]) >= 0]
    if not pool:
        pool, relaxed = table, ("basis_induce",)
    ok = [row for row in pool if row["sample_kl_max"] <= kl_threshold and row["sample_induce"] >= 0]
    if not ok:
        ok = [row for row in pool if row["sample_kl_max"] <= kl_threshold]
        relaxed += ("sample_induce",)
    if not ok:
        worst = min(row["sample_kl_max"] for row in pool)
        raise RefusalTLError(
            f"no cone basis passes the KL filter: the smallest max sample KL is {worst:.3f} > {kl_threshold} "
            f"({how} selection over {len(table)} candidate(s)); rerun with --selection last20 or a larger "
            "--kl-threshold (the training checkpoint is kept, so only selection reruns).")
    if relaxed:
        log.warning("cone selection relaxed the filter(s) %s: no candidate passed them.", ", ".join(relaxed))
    best = min(ok, key=lambda row: row["sample_bypass"])
    return ConeSelection(best["step"], how, table, relaxed)
