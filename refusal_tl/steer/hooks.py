"""Refusal interventions as pure TransformerLens hooks, and where to place them.

Context: docs/algorithms.md §2. A hook has the TransformerLens contract ``fn(activation, hook=...)`` and
**returns a new tensor** (no in-place edits), so one function serves ``run_with_hooks``,
cached generation (one new position per step) and autograd (a direction that is an
``nn.Parameter`` receives gradients). Hooks act on every position, including left
padding, which attention masks out.

Intuition: directional ablation removes the component along r̂ everywhere it can be
written (``resid_pre``, ``attn_out``, ``mlp_out`` of every block), so no layer can read
it; activation addition pushes the residual stream along r at one layer.

Per-row hooks (:func:`row_hooks`) give every batch row its own direction, so several
directions run in one forward (cone samples, :mod:`refusal_tl.steer.multi`).

Placement helpers return ``[(hook_name, fn), ...]`` for ``fwd_hooks=``. Always scope them
(``run_with_hooks`` or ``with model.hooks(fwd_hooks): ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal, get_args

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError, check_choice

Hook = tuple[str, Callable]
ABLATION_POINTS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")
# What can be done with a direction (docs/algorithms.md §2): the one list every caller, check and CLI choice reads.
Intervention = Literal["none", "ablate", "add", "subtract"]
INTERVENTIONS: tuple[str, ...] = get_args(Intervention)
AT_LAYER = ("add", "subtract")  # the interventions that act at one layer (±α·r̂ at its resid_pre)


def ablate_hook(
    act: Float[Tensor, "... d_model"], hook=None, *, basis: Float[Tensor, "k d_model"]
) -> Float[Tensor, "... d_model"]:
    """x ← x − Σ_k (x·b_k) b_k for an orthonormal ``basis`` (rows)."""
    basis = basis.to(act.dtype)
    coeffs = einsum(act, basis, "... d, k d -> ... k")
    return act - einsum(coeffs, basis, "... k, k d -> ... d")


def add_hook(
    act: Float[Tensor, "... d_model"], hook=None, *, vector: Float[Tensor, " d_model"]
) -> Float[Tensor, "... d_model"]:
    """x ← x + vector at every position."""
    return act + vector.to(act.dtype)


def ablate_rows_hook(
    act: Float[Tensor, "batch ... d_model"], hook=None, *, units: Float[Tensor, "rows d_model"]
) -> Float[Tensor, "batch ... d_model"]:
    """x_b ← x_b − (x_b·u_b) u_b: row b of the batch loses its own unit direction u_b."""
    u = _per_row(act, units)
    return act - einsum(act, u, "b ... d, b d -> b ...")[..., None] * _expand(u, act)


def add_rows_hook(
    act: Float[Tensor, "batch ... d_model"], hook=None, *, vectors: Float[Tensor, "rows d_model"]
) -> Float[Tensor, "batch ... d_model"]:
    """x_b ← x_b + v_b at every position of row b."""
    return act + _expand(_per_row(act, vectors), act)


def _per_row(act: Tensor, rows: Tensor) -> Tensor:
    if act.shape[0] != rows.shape[0]:
        raise RefusalTLError(f"{rows.shape[0]} per-row directions for a batch of {act.shape[0]} rows; "
                             "tokenise per-row batches with share_prefix=False (a shared prefix runs once).")
    return rows.to(act.dtype)


def _expand(rows: Tensor, act: Tensor) -> Tensor:
    return rows.reshape(rows.shape[0], *([1] * (act.dim() - 2)), rows.shape[-1])


def orthonormal_basis(directions: Float[Tensor, "*k d_model"]) -> Float[Tensor, "k d_model"]:
    """Unit vector(s) spanning ``directions`` (one vector or several rows).

    Several directions are ablated as a *projection onto the orthogonal complement of
    their span* (QR), not as sequential projections, which differ for non-orthogonal
    directions (docs/algorithms.md §2). Differentiable, so a direction parameter gets gradients.
    """
    d = directions.reshape(-1, directions.shape[-1])
    d = d.to(torch.promote_types(d.dtype, torch.float32))  # at least float32
    if d.shape[0] == 1:
        return d / d.norm()
    q, _ = torch.linalg.qr(d.T)
    return q.T


def sequential_ablate_hook(
    act: Float[Tensor, "... d_model"], hook=None, *, units: Float[Tensor, "k d_model"]
) -> Float[Tensor, "... d_model"]:
    """x ← x − (x·u_1)u_1, then − (x·u_2)u_2, …: one projection per direction, in order (the
    authors' top-k ablation). Equals the span projection only for orthogonal directions."""
    for u in units.to(act.dtype):
        act = act - einsum(act, u, "... d, d -> ...")[..., None] * u
    return act


def ablation_hooks(
    directions: Float[Tensor, "*k d_model"], n_layers: int, layers: list[int] | None = None,
    sequential: bool = False,
) -> list[Hook]:
    """Directional ablation at resid_pre, attn_out and mlp_out of every (or the given) layer.

    Several directions (rows) are ablated as the projection onto the orthogonal complement of
    their span (default), or ``sequential``-ly, one unit direction after another as the
    authors' code does (docs/algorithms.md §8).
    """
    if sequential:
        d = directions.reshape(-1, directions.shape[-1])
        fn = partial(sequential_ablate_hook, units=d / d.norm(dim=-1, keepdim=True))
    else:
        fn = partial(ablate_hook, basis=orthonormal_basis(directions))
    layers = range(n_layers) if layers is None else layers
    return [(f"blocks.{l}.{point}", fn) for l in layers for point in ABLATION_POINTS]


def addition_hooks(vector: Float[Tensor, " d_model"], layer: int, coeff: float = 1.0) -> list[Hook]:
    """Activation addition ``resid_pre[layer] += coeff·vector`` (c=+1 induce, c=−1 jailbreak).

    ``vector`` keeps its norm: pass the unnormalised DIM vector, or α·r̂.
    """
    return [(f"blocks.{layer}.hook_resid_pre", partial(add_hook, vector=coeff * vector))]


def row_hooks(
    kind: Intervention, directions: Float[Tensor, "batch d_model"], n_layers: int, layer: int | None = None,
    alpha: float | Tensor | None = None,
) -> list[Hook]:
    """One direction per batch row (several directions in one forward): ``ablate`` removes
    row b's r̂_b at every layer; ``add``/``subtract`` add ±α·r̂_b at ``layer`` (α defaults to
    each row's norm; a tensor gives one α per row). Same semantics as :func:`intervention_hooks`."""
    check_choice("intervention", kind, INTERVENTIONS)
    units = directions / directions.norm(dim=-1, keepdim=True)
    if kind == "ablate":
        fn = partial(ablate_rows_hook, units=units)
        return [(f"blocks.{l}.{point}", fn) for l in range(n_layers) for point in ABLATION_POINTS]
    if kind in AT_LAYER:
        if layer is None:
            raise RefusalTLError(f"--intervention {kind} needs a layer (--layer L).")
        norms = directions.norm(dim=-1, keepdim=True)
        scale = norms if alpha is None else torch.as_tensor(alpha, dtype=units.dtype, device=units.device)
        vectors = units * scale.reshape(-1, 1) * (1.0 if kind == "add" else -1.0)
        return [(f"blocks.{layer}.hook_resid_pre", partial(add_rows_hook, vectors=vectors))]
    return []  # none


def intervention_hooks(
    kind: Intervention, direction: Float[Tensor, " d_model"], n_layers: int, layer: int | None = None,
    alpha: float | None = None,
) -> list[Hook]:
    """Hooks for one named intervention: ``none``, ``ablate``, ``add`` or ``subtract``.

    ``add``/``subtract`` add ±alpha·r̂ at ``layer`` (alpha defaults to ‖direction‖); check the
    layer with :meth:`refusal_tl.model.RefusalModel.check_layer` first.
    """
    check_choice("intervention", kind, INTERVENTIONS)
    if kind == "none":
        return []
    if kind in AT_LAYER:
        if layer is None:
            raise RefusalTLError(f"--intervention {kind} needs a layer (--layer L).")
        alpha = float(direction.norm()) if alpha is None else alpha
        unit = direction / direction.norm()
        return addition_hooks(unit * alpha, layer, +1.0 if kind == "add" else -1.0)
    return ablation_hooks(direction, n_layers)


@torch.no_grad()
def orthogonalize_weights(hf_model, directions: Float[Tensor, "*k d_model"]) -> None:
    """Bake directional ablation into the weights: W ← W − B ᵀB W on every residual write, B the
    orthonormal basis of ``directions`` (one vector or several rows: their span is projected out).

    **This mutates ``hf_model`` in place.** Projects the span out of the embedding, each attention
    output projection (``o_proj``) and each MLP down projection (``down_proj``), weights and
    biases. The update is computed in float32 and rounded once to the weights' dtype (bf16
    weights lose nothing more than their own rounding). Equivalent to :func:`ablation_hooks`
    only for models without post-norms (Qwen, Llama); Gemma 2 is refused.
    """
    # a model wrapped by the TransformerLens bridge names its modules ``…._original_component.…``
    params = {n.replace("._original_component", ""): p for n, p in hf_model.named_parameters()}
    if any("post_feedforward_layernorm" in n for n in params):
        raise RefusalTLError(
            "weight orthogonalisation is not exact for models with post-norms (Gemma 2); "
            "use ablation hooks instead."
        )
    basis = orthonormal_basis(directions.detach().float())
    for name, w in params.items():
        b = basis.to(w.device)
        w32 = w.float()
        if name.endswith("embed_tokens.weight"):  # [vocab, d_model]
            w.copy_(w32 - (w32 @ b.T) @ b)
        elif name.endswith(("o_proj.weight", "down_proj.weight")):  # [d_model, d_in]
            w.copy_(w32 - b.T @ (b @ w32))
        elif name.endswith(("o_proj.bias", "down_proj.bias")):  # [d_model]
            w.copy_(w32 - (b @ w32) @ b)
