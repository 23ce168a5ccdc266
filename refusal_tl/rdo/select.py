"""Picking one RDO vector among those saved after every step (docs/algorithms.md §4).

``lowest_loss`` (official ``run_rdo_pipeline.py``, default): the saved vector with the
lowest unweighted training loss. ``last20`` (the authors' code option): Arditi's filters
over the last 20 saved vectors.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.scorer import Scorer
from refusal_tl.model import RefusalModel
from refusal_tl.optim import SphereRun

log = logging.getLogger(__name__)


@dataclass
class RdoSelection:
    """The chosen step and, for ``last20``, the scored candidates."""

    step: int  # index into SphereRun.vectors
    how: str
    table: list[dict] = field(default_factory=list)
    relaxed: tuple[str, ...] = ()


def select_rdo(model: RefusalModel, run: SphereRun, alpha: float, layer: int, how: str = "lowest_loss",
               harmful_val: list[str] | None = None, harmless_val: list[str] | None = None, last: int = 20,
               kl_threshold: float = 0.1, induce_threshold: float = 0.0, batch_size: int = 16) -> RdoSelection:
    """Pick one trained vector (docs/algorithms.md §4).

    ``lowest_loss`` (default, official): argmin of the unweighted train loss.
    ``last20`` (the authors' code): score the last ``last`` vectors, scaled by α, with
    Arditi's bypass / induce / KL on the validation sets; keep KL ≤ 0.1 and induce ≥ 0 (no
    layer pruning) and take the lowest bypass. As for DIM, when no vector reaches
    induce ≥ 0 the induce filter is dropped and recorded in ``relaxed``; when none passes
    the KL filter either, the lowest-loss vector is used and recorded.
    """
    if how == "lowest_loss":
        return RdoSelection(run.lowest_loss_step, how)
    if how != "last20":
        raise RefusalTLError(f"unknown RDO selection {how!r}: choose lowest_loss or last20.")
    if not harmful_val or not harmless_val:
        raise RefusalTLError("last20 selection needs harmful and harmless validation prompts.")
    scorer = Scorer(model, harmful_val, harmless_val, batch_size)
    rows = []
    first = max(0, len(run.vectors) - last)
    for i in range(first, len(run.vectors)):
        v = alpha * run.vectors[i][0].to(model.device)
        kl, induce = scorer.kl(v), scorer.induce(v, layer)
        rows.append(dict(step=i, bypass=scorer.bypass(v), induce=induce, kl=kl))
    ok_kl = [row for row in rows if not math.isnan(row["kl"]) and row["kl"] <= kl_threshold]
    ok = [row for row in ok_kl if row["induce"] >= induce_threshold]
    relaxed: tuple[str, ...] = ()
    if not ok and ok_kl:
        ok, relaxed = ok_kl, ("induce",)
        log.warning("No RDO vector reached induce >= %s; selecting without the induce filter.", induce_threshold)
    if not ok:
        log.warning("No RDO vector passed KL <= %s; using the lowest-loss vector.", kl_threshold)
        return RdoSelection(run.lowest_loss_step, how, rows, ("induce", "kl"))
    best = min(ok, key=lambda row: row["bypass"])
    return RdoSelection(best["step"], how, rows, relaxed)
