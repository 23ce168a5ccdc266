"""Evaluation: completions under an intervention, judged; first-token KL side effects.

Judges live in :mod:`refusal_tl.eval.judges`; the four standard conditions (docs/algorithms.md §7)
are ablation and subtraction on harmful prompts and addition on harmless ones, each
against its unsteered baseline.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.stats import rate_ci
from refusal_tl.steer.forward import kl_to_base, map_last_logits
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import AT_LAYER, Intervention, ablation_hooks, intervention_hooks


@dataclass
class EvalResult:
    """Per-prompt completions with their judgements, and the summary rate."""

    model: str
    intervention: Intervention
    layer: int | None
    alpha: float | None
    max_new_tokens: int
    judge: str
    prompts: list[str]
    completions: list[str]
    scores: list[float]
    seconds: float
    direction: dict = field(default_factory=dict)
    kind: str = "refusal"  # the judge's: 1 = refused, or "asr" (1 = fully jailbroken)

    @property
    def rate(self) -> float:
        """Refusal rate (substring judge) or ASR (StrongREJECT), in [0, 1]."""
        return sum(self.scores) / max(len(self.scores), 1)

    @property
    def ci95(self) -> tuple[float, float]:
        """95 % interval of :attr:`rate` (Wilson for 0/1 judgements, bootstrap over prompts otherwise)."""
        return rate_ci(self.scores)

    def to_dict(self) -> dict:
        d = asdict(self)
        rows = [dict(prompt=p, completion=c, score=s, refused=bool(s) if self.kind == "refusal" else None)
                for p, c, s in zip(self.prompts, self.completions, self.scores)]
        for k in ("prompts", "completions", "scores"):
            d.pop(k)
        return {**d, "rate": self.rate, "ci95": list(self.ci95), "n": len(rows), "results": rows}


Directions = RefusalDirection | list[RefusalDirection] | None


def check_several(n_directions: int, intervention: Intervention) -> None:
    """Several directions are only ever ablated together; a one-line error otherwise."""
    if n_directions > 1 and intervention != "ablate":
        raise RefusalTLError(f"several directions can only be ablated together, not used with "
                             f"--intervention {intervention}; pass one --direction.")


def direction_hooks(model: RefusalModel, direction: Directions, intervention: Intervention,
                    layer: int | None = None, alpha: float | None = None, sequential: bool = False):
    """Hooks for ``intervention`` with ``direction``; layer/alpha default to its metadata.

    A list of directions is ablated together: the projection onto the complement of their
    span, or ``sequential``-ly one after another (docs/algorithms.md §8).
    """
    if intervention == "none":
        return []
    if not direction:
        raise RefusalTLError(f"--intervention {intervention} needs a direction (--direction FILE).")
    if isinstance(direction, list):
        check_several(len(direction), intervention)
        for d in direction:
            d.check_width(model.d_model)
        if len(direction) > 1:
            stacked = torch.stack([d.vector.float() for d in direction]).to(model.device)
            return ablation_hooks(stacked, model.n_layers, sequential=sequential)
        direction = direction[0]
    direction.check_width(model.d_model)
    layer = direction.layer if layer is None else layer
    if intervention in AT_LAYER:  # ablation acts at every layer
        model.check_layer(layer)
    vec = direction.vector.to(model.device)
    return intervention_hooks(intervention, vec, model.n_layers, layer, alpha)


def evaluate_intervention(
    model: RefusalModel, prompts: list[str], direction: Directions = None,
    intervention: Intervention = "none", layer: int | None = None, alpha: float | None = None,
    max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 16, sequential: bool = False,
) -> EvalResult:
    """Generate greedily under the intervention and judge every completion (several
    directions: ablated together, see :func:`direction_hooks`)."""
    judge = judge or SubstringJudge()
    hooks = direction_hooks(model, direction, intervention, layer, alpha, sequential)
    meta = _metadata(direction, sequential)
    if isinstance(direction, list):
        direction = direction[0] if len(direction) == 1 else None
    if intervention in AT_LAYER:
        layer = direction.layer if layer is None else layer
        alpha = direction.norm if alpha is None else alpha
    start = time.perf_counter()
    completions = generate(model, prompts, max_new_tokens, hooks, batch_size,
                           desc=f"generating ({intervention})")
    return EvalResult(
        model=model.name, intervention=intervention, layer=layer, alpha=alpha,
        max_new_tokens=max_new_tokens, judge=judge.name, prompts=prompts, completions=completions,
        scores=judge(prompts, completions), seconds=time.perf_counter() - start,
        direction=meta, kind=judge.kind,
    )


def _metadata(direction: Directions, sequential: bool) -> dict:
    if not direction:
        return {}
    if isinstance(direction, list):
        if len(direction) == 1:
            return direction[0].metadata()
        return {"directions": [d.metadata() for d in direction], "sequential": sequential}
    return direction.metadata()


def first_token_kl(
    model: RefusalModel, prompts: list[str], direction: Directions,
    intervention: Intervention = "ablate", layer: int | None = None, alpha: float | None = None,
    batch_size: int = 16,
) -> float:
    """Mean KL(p_clean ‖ p_intervened) of the first generated token (last prompt position);
    several directions are ablated together (:func:`direction_hooks`)."""
    base = map_last_logits(model, prompts, lambda lg, idx: lg, [], batch_size)
    hooks = direction_hooks(model, direction, intervention, layer, alpha)
    return float(kl_to_base(model, prompts, base, hooks, batch_size).mean())


# The four standard conditions (docs/algorithms.md §7): jailbreak by ablation or subtraction on harmful
# prompts, induced refusal by addition on harmless prompts, each against its baseline.
CONDITIONS = (
    ("harmful", "none"), ("harmful", "ablate"), ("harmful", "subtract"),
    ("harmless", "none"), ("harmless", "add"),
)


def evaluate_conditions(
    model: RefusalModel, direction: RefusalDirection | None, harmful: list[str], harmless: list[str],
    max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 16,
    conditions=CONDITIONS,
) -> dict[str, EvalResult]:
    """Every standard condition, keyed ``"harmful/ablate"`` etc."""
    sets = {"harmful": harmful, "harmless": harmless}
    return {
        f"{which}/{kind}": evaluate_intervention(model, sets[which], direction, kind,
                                                 max_new_tokens=max_new_tokens, judge=judge, batch_size=batch_size)
        for which, kind in conditions
    }
