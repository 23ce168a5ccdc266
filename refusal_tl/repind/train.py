"""RepInd training: the RepInd step as the loss of the shared sphere trainer (k = 1)."""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.io import tensor_digest
from refusal_tl.model import RefusalModel
from refusal_tl.optim import SphereRun, random_rows, train_sphere
from refusal_tl.rdo.step import Prepared
from refusal_tl.repind.config import RepIndConfig
from refusal_tl.repind.step import TraceCache, repind_step_losses
from refusal_tl.steer.windows import TrainingPair, pair_lengths, pairs_digest


def train_repind(model: RefusalModel, pairs: list[TrainingPair], alpha: float, layer: int,
                 V: Float[Tensor, "v d_model"], cfg: RepIndConfig = RepIndConfig(),
                 checkpoint: str | Path | None = None, max_steps: int | None = None, progress: bool = True,
                 cache: TraceCache | None = None,
                 desc: str = "RepInd steps") -> SphereRun:
    """Projected gradient descent for one direction r, independent of every row of ``V``
    (DIM first, then earlier RepInd directions) through L_ind; no orthogonality constraint.

    r starts from N(0, I) seeded by ``cfg.seed``; gradients are clipped as in RDO.
    ``cache`` (the r-independent traces) can be shared by the candidates of one iteration.
    """
    V = V.reshape(-1, model.d_model).float()
    layers = cfg.ind_layers(model.n_layers)
    key = {"method": "repind", "model": model.key, **cfg.key(), "alpha": round(alpha, 6), "layer": layer,
           "n_pairs": len(pairs), "pairs": pairs_digest(pairs), "V": [tensor_digest(v) for v in V],
           "ind_layers": len(layers)}
    prep, lengths = Prepared(model, pairs, layer, keep=cfg.epochs > 1), pair_lengths(model, pairs)
    cache = cache or TraceCache(model, pairs, V, layers, tokens=cfg.tokens)

    def loss_fn(rows: torch.nn.Parameter, group: list[int], step: int) -> dict[str, float]:
        return repind_step_losses(model, rows, alpha, layer, pairs, group, prep, cache, lengths, cfg)

    init = random_rows(1, model.d_model, cfg.seed).to(model.device)
    return train_sphere(init, len(pairs), loss_fn, cfg.train, key=key, checkpoint=checkpoint,
                        max_steps=max_steps, progress=progress, desc=desc)
