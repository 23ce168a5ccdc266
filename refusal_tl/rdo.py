"""RDO: gradient-optimised refusal directions (Algorithm 1, SPEC E). Work in progress.

Context: a unit direction r is trained by projected gradient descent on the sphere so
that ablating it makes the model answer harmful prompts (L_abl), adding α·r̂ at the DIM
layer makes it refuse harmless ones (L_add), and ablating it leaves harmless behaviour
unchanged (L_ret).

This module holds the pieces that are done and tested: the per-batch losses on a model
(with clean retain logits computed once per prompt) and the optimiser step on the sphere
with the plateau schedule. The training loop with checkpoints, the CLI and selection are
not written yet (see the issue).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.forward import prefill
from refusal_tl.hooks import ablation_hooks, addition_hooks
from refusal_tl.losses import retain_kl, target_cross_entropy, target_labels
from refusal_tl.model import RefusalModel


@dataclass(frozen=True)
class RdoConfig:
    """Hyper-parameters of Algorithm 1 (defaults: SPEC E)."""

    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    accumulation: int = 16
    clip: float = 10.0
    patience: int = 5
    max_lr_reductions: int = 2
    epochs: int = 1
    weights: dict = field(default_factory=lambda: {"abl": 1.0, "add": 0.2, "ret": 1.0})
    retain_kl: str = "paper"  # or "code": the authors' KL(ablated‖clean) summed over the window
    seed: int = 42


def tangent(grad: Float[Tensor, "d_model"], r: Float[Tensor, "d_model"]) -> Float[Tensor, "d_model"]:
    """Project a gradient onto the tangent space of the sphere at r: g − (g·r̂)r̂."""
    unit = r / r.norm()
    return grad - (grad @ unit) * unit


@dataclass
class Plateau:
    """Reduce-on-plateau: ÷10 after ``patience`` steps without a new best (at most
    ``max_reductions`` times); the next plateau stops training (SPEC E)."""

    patience: int = 5
    max_reductions: int = 2
    best: float = float("inf")
    bad_steps: int = 0
    reductions: int = 0

    def step(self, loss: float) -> str:
        """Record one step's unweighted train loss; return 'ok', 'reduce' or 'stop'."""
        if loss < self.best:
            self.best, self.bad_steps = loss, 0
            return "ok"
        self.bad_steps += 1
        if self.bad_steps < self.patience:
            return "ok"
        self.bad_steps = 0
        if self.reductions >= self.max_reductions:
            return "stop"
        self.reductions += 1
        return "reduce"


def target_logits(model: RefusalModel, prompts: list[str], targets: list[str], hooks) -> tuple[Tensor, Tensor, Tensor]:
    """Logits over the target window of ``prompt + target``, the labels, and the window mask.

    Only the last ``max target length + 1`` positions are unembedded (the last template
    token predicts the first target token). Left padding keeps every window at the end;
    the mask marks, per row, its last template token and its target tokens.
    """
    full = model.chat.tokenize(prompts, targets, share_prefix=True).to(model.device)
    bare = model.chat.tokenize(prompts, share_prefix=True)
    n_target = full.mask.sum(1).cpu() - bare.mask.sum(1)  # per-row target length
    window = int(n_target.max()) + 1
    target_mask = torch.zeros_like(full.ids)
    for row, n in enumerate(n_target.tolist()):
        if n > 0:
            target_mask[row, -n:] = 1
    with model.bridge.hooks(fwd_hooks=list(hooks)):
        cache, mask = prefill(model, full)
        logits = model.bridge(full.ids, attention_mask=mask, past_key_values=cache, logits_to_keep=window)
    labels = target_labels(full.ids, target_mask)[:, -window:]
    window_mask = target_mask.clone()
    window_mask[:, :-1] |= target_mask[:, 1:]  # add the last template token of each row
    return logits, labels, window_mask[:, -window:]


def rdo_losses(model: RefusalModel, r: Tensor, alpha: float, layer: int, batch: dict,
               clean_retain: Tensor | None = None, retain_mode: str = "paper") -> dict[str, Tensor]:
    """L_abl, L_add and L_ret for one batch of (prompt, target) pairs; differentiable in r.

    ``batch`` has ``answer``/``refusal``/``retain`` entries, each ``(prompts, targets)``.
    ``clean_retain`` are the retain-window logits without intervention (computed once).
    """
    L = model.n_layers
    unit = r / r.norm()
    logits, labels, _ = target_logits(model, *batch["answer"], ablation_hooks(r, L))
    parts = {"abl": target_cross_entropy(logits, labels)}
    logits, labels, _ = target_logits(model, *batch["refusal"], addition_hooks(alpha * unit, layer))
    parts["add"] = target_cross_entropy(logits, labels)
    if clean_retain is None:
        with torch.no_grad():
            clean_retain, _, _ = target_logits(model, *batch["retain"], [])
    ablated, _, window = target_logits(model, *batch["retain"], ablation_hooks(r, L))
    parts["ret"] = retain_kl(clean_retain, ablated, retain_mode, mask=window)
    return parts
