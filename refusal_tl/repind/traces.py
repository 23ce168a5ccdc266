"""Cosine traces (paper §6, Definition 6.1; docs/algorithms.md §8).

Context: two directions λ, μ are *representationally independent* when ablating one does not
change how strongly the residual stream points along the other: layer by layer,
cos(x^l, λ) on a clean run equals cos(x̃^l, λ) on a run with μ ablated at every layer and
position, where x̃^l is ``resid_pre`` of block l **after** the ablation at that layer.

One hook serves the figures (no grad) and the RepInd loss (with grad, the direction a
parameter): :func:`trace_hooks` records the last-token ``resid_pre`` of each layer and applies
the ablation projection itself. A projection is idempotent, so the record is the
post-ablation x̃ whether the ablation hook at that point ran before or after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.forward import batches, window_logits
from refusal_tl.steer.hooks import Hook, ablate_hook, ablation_hooks, orthonormal_basis


def record_hook(act: Float[Tensor, "batch pos d_model"], hook=None, *, store: dict, key: int,
                positions: Int[Tensor, " rows"] | None, basis: Float[Tensor, "k d_model"] | None,
                tokens: int | None = None) -> Float[Tensor, "batch pos d_model"]:
    """Store ``act`` at each row's position (default: the last), in float32, projected off ``basis``
    (in float32 too, so a bf16 model's rounding leaves no trace along it); return ``act`` unchanged.

    With ``tokens`` = W it stores the W positions ending at each row's position, ``[batch, W, d]``
    (indices before 0 repeat position 0; :func:`token_mask` says which of the W count).

    A batch with a shared prefix runs the prefix first (one row): that call is skipped when its
    rows or positions cannot be the batch's; otherwise (a one-row batch whose positions fall
    inside the prefix) the batch's own forward, which runs after it, overwrites the record.
    """
    if positions is not None and (act.shape[0] != positions.shape[0] or act.shape[1] <= int(positions.max())):
        return act  # the shared prefix's forward
    rows = torch.arange(act.shape[0], device=act.device)
    last = torch.full_like(rows, act.shape[1] - 1) if positions is None else positions.to(act.device)
    if tokens is None:
        x = act[rows, last]
    else:
        idx = (last[:, None] - tokens + 1 + torch.arange(tokens, device=act.device)).clamp(min=0)
        x = act[rows[:, None], idx]
    x = x.float()
    store[key] = x if basis is None else ablate_hook(x, basis=basis)
    return act


def token_mask(counts: Int[Tensor, " batch"], tokens: int) -> Float[Tensor, "batch tokens"]:
    """1 where a right-aligned window of ``tokens`` positions holds one of a row's ``counts`` last tokens."""
    return (torch.arange(tokens) >= tokens - counts.cpu()[:, None]).float()


def user_token_counts(model: RefusalModel, prompts: list[str]) -> Int[Tensor, " batch"]:
    """How many tokens of each chat prompt follow the template's shared prefix (its system
    prompt): the instruction and the post-instruction tokens that RepInd averages over (App. A)."""
    return model.chat.tokenize(prompts, share_prefix=True).mask.sum(1)


def trace_hooks(store: dict, layers: list[int], positions: Tensor | None = None,
                ablate: Tensor | None = None, tokens: int | None = None) -> list[Hook]:
    """Record hooks at ``blocks.{l}.hook_resid_pre`` for ``layers`` into ``store[l]``."""
    basis = None if ablate is None else orthonormal_basis(ablate)
    return [(f"blocks.{l}.hook_resid_pre",
             partial(record_hook, store=store, key=l, positions=positions, basis=basis, tokens=tokens))
            for l in layers]


def resid_traces(model: RefusalModel, batch: Batch, layers: list[int], ablate: Tensor | None = None,
                 positions: Tensor | None = None, tokens: int | None = None
                 ) -> Float[Tensor, "batch n_layers *tokens d_model"]:
    """Last-token (or ``positions``) ``resid_pre`` of ``layers``, on a clean run or with the
    directions ``ablate`` (rows, span) ablated at every layer (x̃ of Definition 6.1); with
    ``tokens`` = W, the W positions ending there (``[batch, layers, W, d]``).

    Differentiable in ``ablate``: the RepInd loss calls it with the direction parameter.
    """
    store: dict[int, Tensor] = {}
    hooks = [] if ablate is None else ablation_hooks(ablate, model.n_layers)
    window_logits(model, batch, 1, hooks + trace_hooks(store, layers, positions, ablate, tokens))
    return torch.stack([store[l] for l in layers], dim=1)


def cosines(x: Float[Tensor, "*batch d_model"], v: Float[Tensor, "*vshape d_model"]) -> Float[Tensor, "..."]:
    """cos(x, v) along the last axis (at least float32); ``v`` broadcasts against ``x``."""
    dtype = torch.promote_types(torch.promote_types(x.dtype, v.dtype), torch.float32)
    return torch.nn.functional.cosine_similarity(x.to(dtype), v.to(x.device, dtype), dim=-1)


def cosine_traces(model: RefusalModel, prompts: list[str], direction: Tensor, ablate: Tensor | None = None,
                  layers: list[int] | None = None, batch_size: int = 16) -> Float[Tensor, "n n_layers"]:
    """cos(resid_pre_l at the last prompt token, ``direction``) per prompt and layer, clean or
    with ``ablate`` ablated everywhere (measured after the ablation at each layer)."""
    if not prompts:
        raise RefusalTLError("cosine traces need at least one prompt; the prompt file is empty.")
    for name, t in (("direction", direction), ("ablated direction", ablate)):
        if t is not None and t.shape[-1] != model.d_model:
            raise RefusalTLError(f"the {name} has width {t.shape[-1]} but the model's d_model is {model.d_model}; "
                                 "was it made for another model?")
    layers = list(range(model.n_layers)) if layers is None else layers
    ablate = None if ablate is None else ablate.to(model.device)
    out = torch.empty(len(prompts), len(layers))
    for idx, batch in batches(model, prompts, batch_size):
        with torch.no_grad():
            out[idx] = cosines(resid_traces(model, batch, layers, ablate), direction).cpu()
    return out


@dataclass
class CosineTrace:
    """cos(x, direction) per prompt and layer, clean and with another direction ablated."""

    layers: list[int]
    clean: Float[Tensor, "n n_layers"]
    ablated: Float[Tensor, "n n_layers"]
    direction: str = "λ"
    ablated_direction: str = "μ"

    @property
    def delta(self) -> Float[Tensor, " n_layers"]:
        """Mean over prompts of cos(x̃, λ) − cos(x, λ), per layer."""
        return (self.ablated - self.clean).mean(0)

    @property
    def peak_delta(self) -> float:
        """max over layers of |mean Δcos| (the interference of one direction on the other)."""
        return float(self.delta.abs().max())

    def to_dict(self) -> dict:
        return {"layers": self.layers, "direction": self.direction, "ablated_direction": self.ablated_direction,
                "clean_mean": self.clean.mean(0).tolist(), "clean_std": self.clean.std(0, unbiased=False).tolist(),
                "ablated_mean": self.ablated.mean(0).tolist(),
                "ablated_std": self.ablated.std(0, unbiased=False).tolist(),
                "peak_delta": self.peak_delta, "n_prompts": self.clean.shape[0]}


def trace_pair(model: RefusalModel, prompts: list[str], direction: Tensor, ablate: Tensor,
               names: tuple[str, str] = ("λ", "μ"), batch_size: int = 16) -> CosineTrace:
    """The clean and the ablated trace of ``direction`` (Fig. 6, one panel)."""
    clean = cosine_traces(model, prompts, direction, None, batch_size=batch_size)
    abl = cosine_traces(model, prompts, direction, ablate, batch_size=batch_size)
    return CosineTrace(list(range(model.n_layers)), clean, abl, *names)


def interference(model: RefusalModel, prompts: list[str], directions: dict[str, Tensor],
                 batch_size: int = 16) -> tuple[list[str], Float[Tensor, "k k"]]:
    """Peak |Δcos| of each direction (row) when each other one (column) is ablated."""
    names = list(directions)
    clean = {n: cosine_traces(model, prompts, directions[n], batch_size=batch_size) for n in names}
    out = torch.zeros(len(names), len(names))
    for j, mu in enumerate(names):
        for i, lam in enumerate(names):
            if i != j:
                abl = cosine_traces(model, prompts, directions[lam], directions[mu], batch_size=batch_size)
                out[i, j] = (abl - clean[lam]).mean(0).abs().max()
    return names, out
