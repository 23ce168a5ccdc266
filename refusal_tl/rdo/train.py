"""RDO training (Algorithm 1): the RDO step as the loss of the shared sphere trainer (k = 1)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from refusal_tl.model import RefusalModel
from refusal_tl.optim import SphereRun, random_rows, train_sphere
from refusal_tl.rdo.config import RdoConfig
from refusal_tl.rdo.step import Prepared, step_losses
from refusal_tl.steer.windows import TrainingPair, pair_lengths, pairs_digest


def train_rdo(model: RefusalModel, pairs: list[TrainingPair], alpha: float, layer: int, cfg: RdoConfig = RdoConfig(),
              checkpoint: str | Path | None = None, constraints: Tensor | None = None,
              max_steps: int | None = None, progress: bool = True) -> SphereRun:
    """Projected gradient descent on the unit sphere for one direction r (``run.rows[0]``).

    ``pairs`` holds one :class:`~refusal_tl.steer.windows.TrainingPair` per example: (harmful prompt,
    t_answer), (harmless prompt, t_refusal), (harmless prompt, t_retain).
    r starts from N(0, I) seeded by ``cfg.seed``. ``checkpoint`` (a ``.safetensors`` file) is
    written after every step and resumed from; ``constraints`` (rows) are directions r must
    stay orthogonal to (RDO⊥).
    """
    key = {"method": "rdo", "model": model.key, **cfg.key(), "alpha": round(alpha, 6), "layer": layer,
           "n_pairs": len(pairs), "pairs": pairs_digest(pairs)}
    prep, lengths = Prepared(model, pairs, layer, keep=cfg.epochs > 1), pair_lengths(model, pairs)
    cons = None if constraints is None else constraints.reshape(-1, model.d_model).float()

    def loss_fn(rows: torch.nn.Parameter, group: list[int], step: int) -> dict[str, float]:
        return step_losses(model, rows, alpha, layer, pairs, group, prep, lengths, cfg)

    init = random_rows(1, model.d_model, cfg.seed, cons).to(model.device)
    return train_sphere(init, len(pairs), loss_fn, cfg.train, key=key, constraints=cons, checkpoint=checkpoint,
                        max_steps=max_steps, progress=progress, desc="RDO steps")
