"""The three selection scores of a vector on fixed validation sets (docs/algorithms.md §3).

- **bypass**: mean refusal score on harmful val with v ablated at every layer (lower is better);
- **induce**: mean refusal score on harmless val with +v added at ``resid_pre`` of a layer;
- **KL**: mean KL(p_base ‖ p_ablated) on harmless val at the last position.

Shared by DIM selection and RDO's ``last20`` selection (and the cone filters to come).
"""

from __future__ import annotations

from torch import Tensor

from refusal_tl.eval.metrics import refusal_score
from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import kl_to_base, map_last_logits, refusal_scores
from refusal_tl.steer.hooks import ablation_hooks, addition_hooks


class Scorer:
    """Bypass, induce and KL scores of vectors on fixed validation prompts.

    The clean harmless logits (the KL baseline) are computed once, at construction.
    """

    def __init__(self, model: RefusalModel, harmful_val: list[str], harmless_val: list[str], batch_size: int = 16):
        self.model, self.harmful, self.harmless, self.bs = model, harmful_val, harmless_val, batch_size
        self.base_logits = map_last_logits(model, harmless_val, lambda lg, idx: lg, [], batch_size)

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
        return self._mean_score(self.harmless, addition_hooks(v, layer))

    def kl(self, v: Tensor) -> float:
        """Mean last-position KL(p_base ‖ p_ablated) on harmless val."""
        hooks = ablation_hooks(v, self.model.n_layers)
        return float(kl_to_base(self.model, self.harmless, self.base_logits, hooks, self.bs).mean())
