"""The cone step (Algorithm 2): the RDO loss on fresh cone samples and on every basis vector.

Context: a cone with orthonormal basis B (N rows) is trained so that *every* direction in
it mediates refusal. Each step draws, for every example, ``n_samples`` fresh directions
r = normalise(sᵀB) (s uniform on the positive orthant, docs/algorithms.md §6) and adds

    L = (1/n_s)·Σ_samples L_RDO(r) + (1/N)·Σ_i L_RDO(b_i).

Gradients flow through the samples into B. As in the official code each example gets its
own samples; they run in one forward per micro-batch with one direction per batch row
(:func:`~refusal_tl.steer.hooks.row_hooks`), so per-example sampling costs nothing extra.
A 1-dimensional cone has no samples (they would all equal b_1): it is RDO, step for step.

The step reuses the RDO step's caches (:class:`~refusal_tl.rdo.step.Prepared`): the clean
retain logits and the residual at ``l_add`` are computed once per example, not once per
direction. :func:`reference_cone_step` is the straightforward version (every direction of
every example through :func:`~refusal_tl.rdo.step.reference_step`), for tests and
``benchmarks/bench_cone.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.cone.config import ConeConfig
from refusal_tl.model import RefusalModel
from refusal_tl.rdo.step import Prepared, reference_step, term_losses
from refusal_tl.steer.windows import TERMS, TrainingPair, buckets

# A direction of the step: (weight in the loss, idx -> r for those examples, [d] or [len(idx), d]).
Term = tuple[float, Callable[[list[int]], Tensor]]


def sample_weights(n: int, n_samples: int, dims: int, seed: int, how: str = "orthant"
                   ) -> Float[Tensor, "n n_samples dims"]:
    """Cone weights for ``n`` examples: ``orthant`` s = |z|/‖z‖ (uniform on the orthant of the
    sphere); ``interpolation`` exp(z)/Σexp(z) (the official option, biased to the centre)."""
    z = torch.randn(n, n_samples, dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = z.abs() / z.norm(dim=-1, keepdim=True) if how == "orthant" else torch.softmax(z, dim=-1)
    return w.float()


def step_seed(seed: int, step: int) -> int:
    """The seed of the samples drawn at optimizer ``step`` (a resumed run draws the same)."""
    return seed * 100_003 + step


def directions(rows: Float[Tensor, "dims d_model"], group: list[int], cfg: ConeConfig, step: int) -> list[Term]:
    """The basis vectors (weight 1/N each) and the per-example samples (weight 1/n_s each)."""
    dims = rows.shape[0]
    terms: list[Term] = [(1.0 / dims, lambda idx, i=i: rows[i]) for i in range(dims)]
    n_s = cfg.n_samples if dims > 1 else 0
    if n_s:
        weights = sample_weights(len(group), n_s, dims, step_seed(cfg.seed, step), cfg.sampling).to(rows)
        pos = {ex: k for k, ex in enumerate(group)}

        def sample(idx: list[int], j: int) -> Tensor:
            r = weights[[pos[i] for i in idx], j] @ rows
            return r / r.norm(dim=-1, keepdim=True)

        terms += [(1.0 / n_s, lambda idx, j=j: sample(idx, j)) for j in range(n_s)]
    return terms


def cone_step_losses(model: RefusalModel, rows: Float[Tensor, "dims d_model"], alpha: float, layer: int,
                     pairs: list[TrainingPair], group: list[int], prep: Prepared, lengths: dict[str, list[int]],
                     cfg: ConeConfig, step: int, backward: bool = True) -> dict[str, float]:
    """One optimizer step's loss terms over ``group`` (each the weighted sum over directions of
    its mean over examples, so ``abl + add + ret`` is the official train loss)."""
    prep.ensure(group)
    means = {name: 0.0 for name in TERMS}
    terms = directions(rows, group, cfg, step)  # the step's samples, drawn once for every term and micro-batch
    for name in TERMS:
        needs_grad = backward and cfg.weights.get(name, 0.0) != 0.0
        for idx in buckets(lengths[name], group, cfg.micro_batch):
            for weight, make in terms:
                with torch.set_grad_enabled(needs_grad):
                    values = term_losses(model, make(idx), name, alpha, layer, pairs, idx, prep, cfg.retain_kl)
                    if needs_grad:
                        (weight * cfg.weights[name] * values.sum() / len(group)).backward()
                means[name] += weight * float(values.detach().sum()) / len(group)
    prep.release(group)
    return means


def reference_cone_step(model: RefusalModel, rows: Float[Tensor, "dims d_model"], alpha: float, layer: int,
                        pairs: list[TrainingPair], group: list[int], cfg: ConeConfig, step: int,
                        backward: bool = True) -> dict[str, float]:
    """The straightforward cone step: every direction of every example is its own RDO
    :func:`~refusal_tl.rdo.step.reference_step` (three full forwards, clean logits recomputed)."""
    means = {name: 0.0 for name in TERMS}
    for weight, make in directions(rows, group, cfg, step):
        for i in group:
            with torch.set_grad_enabled(backward):
                r = make([i]).reshape(-1)
            leaf = r.detach().requires_grad_(backward)
            parts = reference_step(model, leaf, alpha, layer, pairs, [i], cfg.rdo, backward)
            if backward:
                r.backward(leaf.grad * weight / len(group))
            for name in TERMS:
                means[name] += weight * parts[name] / len(group)
    return means
