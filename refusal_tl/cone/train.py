"""Cone training (Algorithm 2): the cone step as the loss of the shared sphere trainer (k = N rows)."""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.cone.config import ConeConfig
from refusal_tl.cone.step import cone_step_losses
from refusal_tl.io import tensor_digest
from refusal_tl.model import RefusalModel
from refusal_tl.optim import SphereRun, random_rows, train_sphere
from refusal_tl.optim.sphere import gram_schmidt
from refusal_tl.rdo.step import Prepared
from refusal_tl.steer.windows import TrainingPair, pair_lengths, pairs_digest


def grow(previous: Float[Tensor, "n d_model"] | None, dims: int, d_model: int,
         seed: int) -> Float[Tensor, "dims d_model"]:
    """The initial basis of a ``dims``-dimensional cone: ``previous`` rows (a lower-dimensional
    cone's lowest-loss basis, or an RDO direction) plus seeded N(0, I) rows, orthonormalised in
    order (Gram–Schmidt keeps the previous rows where they were)."""
    n = 0 if previous is None else previous.shape[0]
    if n > dims:
        raise ValueError(f"cannot grow a {n}-dimensional basis into {dims} dimensions")
    fresh = random_rows(dims, d_model, seed, orthogonalise="gram_schmidt")[n:]
    rows = fresh if previous is None else torch.cat([previous.float().cpu(), fresh])
    return gram_schmidt(rows)


def train_cone(model: RefusalModel, pairs: list[TrainingPair], alpha: float, layer: int,
               init: Float[Tensor, "dims d_model"], cfg: ConeConfig = ConeConfig(),
               checkpoint: str | Path | None = None, max_steps: int | None = None, progress: bool = True) -> SphereRun:
    """Train the orthonormal basis ``init`` (N rows) on ``pairs`` (as :func:`~refusal_tl.rdo.train_rdo`);
    ordered Gram–Schmidt after every step. ``checkpoint`` is written every step and resumed from."""
    dims = init.shape[0]
    key = {"method": "cone", "model": model.key, **cfg.key(), "alpha": round(alpha, 6), "layer": layer,
           "n_pairs": len(pairs), "pairs": pairs_digest(pairs), "init": tensor_digest(init)}
    prep, lengths = Prepared(model, pairs, layer, keep=cfg.epochs > 1), pair_lengths(model, pairs)

    def loss_fn(rows: torch.nn.Parameter, group: list[int], step: int) -> dict[str, float]:
        return cone_step_losses(model, rows, alpha, layer, pairs, group, prep, lengths, cfg, step)

    return train_sphere(init.to(model.device), len(pairs), loss_fn, cfg.train, key=key,
                        orthogonalise="gram_schmidt", checkpoint=checkpoint, max_steps=max_steps,
                        progress=progress, desc=f"cone dim {dims} steps")
