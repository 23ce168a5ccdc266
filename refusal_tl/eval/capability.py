"""An offline **proxy** for capability side effects (docs/algorithms.md §7), not a benchmark.

Arditi et al.'s check: the model answers harmless prompts greedily; the cross-entropy of those
*own* completions is then measured without and with the intervention. A direction that only
mediates refusal leaves it almost unchanged; one that damages the model raises it. Reported
with the first-token KL. The paper's benchmarks (TruthfulQA MC2, ARC-Challenge, MMLU, GSM8K)
need lm-eval and its data from the Hugging Face Hub; this proxy runs anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.evaluate import Directions, direction_hooks, first_token_kl
from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import length_order, window_logits
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import Hook, Intervention
from refusal_tl.steer.metrics import target_cross_entropy
from refusal_tl.steer.windows import windows

LABEL = "capability proxy (offline): CE of the model's own harmless completions + first-token KL, not a benchmark"


@dataclass
class CapabilityProxy:
    ce_clean: float  # mean per-token CE of the completions, no intervention
    ce_intervened: float  # the same completions under the intervention
    first_token_kl: float
    n_prompts: int
    max_new_tokens: int
    intervention: Intervention
    label: str = LABEL

    @property
    def delta_ce(self) -> float:
        return self.ce_intervened - self.ce_clean

    def to_dict(self) -> dict:
        return asdict(self) | {"delta_ce": self.delta_ce}


@torch.no_grad()
def completion_ce(model: RefusalModel, prompts: list[str], completions: list[str], hooks: list[Hook] = (),
                  batch_size: int = 16) -> Float[Tensor, " n"]:
    """Per-prompt mean cross-entropy of ``completions`` after ``prompts`` under ``hooks``."""
    out = torch.zeros(len(prompts))
    order = length_order(model, [p + c for p, c in zip(prompts, completions)])
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        w = windows(model, [prompts[i] for i in idx], [completions[i] for i in idx])
        logits = window_logits(model, w.batch, w.width, hooks)
        out[idx] = target_cross_entropy(logits, w.labels).cpu()
    return out


@dataclass
class OwnAnswers:
    """The model's own greedy answers to harmless prompts (empty ones dropped) and their clean CE:
    the part of the proxy that does not depend on the intervention, shared by several directions."""

    prompts: list[str]
    completions: list[str]
    ce_clean: float
    max_new_tokens: int


def own_answers(model: RefusalModel, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 16) -> OwnAnswers:
    """Generate the answers once and score them without any intervention."""
    answers = generate(model, prompts, max_new_tokens, [], batch_size, desc="own completions")
    kept = [(p, a) for p, a in zip(prompts, answers) if a]
    if not kept:
        raise RefusalTLError("the model answered none of the prompts; use other (harmless) prompts.")
    ps, cs = [p for p, _ in kept], [a for _, a in kept]
    return OwnAnswers(ps, cs, float(completion_ce(model, ps, cs, [], batch_size).mean()), max_new_tokens)


def capability_proxy(model: RefusalModel, prompts: list[str], direction: Directions,
                     intervention: Intervention = "ablate", max_new_tokens: int = 64, layer: int | None = None,
                     alpha: float | None = None, batch_size: int = 16,
                     answers: OwnAnswers | None = None) -> CapabilityProxy:
    """The proxy on harmless ``prompts`` (prompts whose greedy answer is empty are skipped);
    ``answers``: :func:`own_answers` of these prompts, when already made for another direction."""
    answers = answers or own_answers(model, prompts, max_new_tokens, batch_size)
    ps, cs = answers.prompts, answers.completions
    hooks = direction_hooks(model, direction, intervention, layer, alpha)
    intervened = completion_ce(model, ps, cs, hooks, batch_size).mean()
    kl = first_token_kl(model, ps, direction, intervention, layer, alpha, batch_size)
    return CapabilityProxy(answers.ce_clean, float(intervened), kl, len(ps), answers.max_new_tokens, intervention)
