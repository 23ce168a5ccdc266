"""The three selection scores of a vector on fixed validation sets (docs/algorithms.md §3).

- **bypass**: mean refusal score on harmful val with v ablated at every layer (lower is better);
- **induce**: mean refusal score on harmless val with +v added at ``resid_pre`` of a layer;
- **KL**: mean KL(p_base ‖ p_ablated) on harmless val at the last position.

Shared by DIM selection, RDO's ``last20`` selection and the cone filters; the ``*_many``
variants score many vectors at once, one vector per batch row (:mod:`refusal_tl.steer.multi`).
Induce (one vector or many) resumes at the addition's layer from the clean harmless run kept at
construction (:mod:`refusal_tl.steer.resume`), so the blocks before it run once, not once per vector.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import kl_to_base, refusal_scores
from refusal_tl.steer.hooks import ablation_hooks, addition_hooks
from refusal_tl.steer.metrics import refusal_score
from refusal_tl.steer.multi import multi_kl, multi_refusal_scores
from refusal_tl.steer.resume import clean_states, resumed_refusal_scores


class Scorer:
    """Bypass, induce and KL scores of vectors on fixed validation prompts.

    The clean harmless run is done once, at construction: its logits are the KL baseline,
    its block inputs the starting points of :meth:`induce`.
    """

    def __init__(self, model: RefusalModel, harmful_val: list[str], harmless_val: list[str], batch_size: int = 16):
        self.model, self.harmful, self.harmless, self.bs = model, harmful_val, harmless_val, batch_size
        self.base_logits, self._clean = clean_states(model, harmless_val, batch_size)

    def _mean_score(self, prompts: list[str], hooks) -> float:
        return float(refusal_scores(self.model, prompts, hooks, self.bs).mean())

    def baseline(self) -> tuple[float, float]:
        """Mean refusal score without intervention on harmful and harmless val."""
        safe = float(refusal_score(self.base_logits, self.model.chat.refusal_ids).mean())
        return self._mean_score(self.harmful, []), safe

    def bypass(self, v: Tensor) -> float:
        """Mean refusal score on harmful val with v ablated at every layer (lower is better)."""
        return self._mean_score(self.harmful, ablation_hooks(v, self.model.n_layers))

    def induce(self, v: Tensor, layer: int) -> float:
        """Mean refusal score on harmless val with +v added at ``resid_pre`` of ``layer``."""
        return float(resumed_refusal_scores(self.model, self._clean, layer, addition_hooks(v, layer)).mean())

    def kl(self, v: Tensor) -> float:
        """Mean last-position KL(p_base ‖ p_ablated) on harmless val."""
        hooks = ablation_hooks(v, self.model.n_layers)
        return float(kl_to_base(self.model, self.harmless, self.base_logits, hooks, self.bs).mean())

    def bypass_many(self, vs: Float[Tensor, "n d_model"]) -> Float[Tensor, " n"]:
        """:meth:`bypass` of every row of ``vs``."""
        return multi_refusal_scores(self.model, self.harmful, vs, "ablate", batch_size=self.bs * 2).mean(1)

    def induce_many(self, vs: Float[Tensor, "n d_model"], layer: int) -> Float[Tensor, " n"]:
        """:meth:`induce` of every row of ``vs`` (each row added with its own norm), each resumed at
        ``layer`` from the clean run: blocks before it never run again (on 2 CPU cores that saves more
        than batching rows of different directions together, which the other ``*_many`` do)."""
        return torch.tensor([self.induce(v, layer) for v in vs])

    def kl_many(self, vs: Float[Tensor, "n d_model"]) -> Float[Tensor, " n"]:
        """:meth:`kl` of every row of ``vs``."""
        return multi_kl(self.model, self.harmless, self.base_logits, vs, batch_size=self.bs * 2).mean(1)
