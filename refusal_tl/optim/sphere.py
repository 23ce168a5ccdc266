"""Geometry of k unit vectors (a k × d matrix, one vector per row) for projected gradient descent.

- :func:`tangent_rows`: each row's gradient projected onto the tangent space of the sphere
  at that row, g_i ← g_i − (g_i·b̂_i) b̂_i (docs/algorithms.md §5);
- :func:`normalise_rows`: b_i ← b_i / ‖b_i‖ (RDO, k = 1);
- :func:`gram_schmidt`: ordered Gram–Schmidt, b_i ← b_i − Σ_{j<i} (b_i·b_j) b_j, then
  normalised (cones, Algorithm 2). Written out rather than ``torch.linalg.qr``, whose sign
  convention may flip a row and with it the cone;
- :func:`project_out`: remove the span of constraint directions from every row (hard
  constraints such as RDO⊥, docs/algorithms.md §5).
"""

from __future__ import annotations

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor


def tangent_rows(grad: Float[Tensor, "k d"], rows: Float[Tensor, "k d"]) -> Float[Tensor, "k d"]:
    """Per-row tangent projection of ``grad`` at ``rows`` (rows need not be unit length)."""
    unit = rows / rows.norm(dim=-1, keepdim=True)
    coeff = einsum(grad, unit, "k d, k d -> k")
    return grad - coeff[:, None] * unit


def normalise_rows(rows: Float[Tensor, "k d"]) -> Float[Tensor, "k d"]:
    return rows / rows.norm(dim=-1, keepdim=True)


def gram_schmidt(rows: Float[Tensor, "k d"]) -> Float[Tensor, "k d"]:
    """Ordered (modified) Gram–Schmidt: row i keeps its sign and only loses rows 0…i−1."""
    out: list[Tensor] = []
    for row in rows:
        for prev in out:
            row = row - (row @ prev) * prev
        out.append(row / row.norm())
    return torch.stack(out)


def project_out(rows: Float[Tensor, "k d"], constraints: Float[Tensor, "c d"] | None) -> Float[Tensor, "k d"]:
    """Remove the span of ``constraints`` (rows, any norms) from every row: x ← (I − QQᵀ)x."""
    if constraints is None:
        return rows
    q, _ = torch.linalg.qr(constraints.T.to(rows))  # [d, c]; the sign of q does not matter here
    return rows - (rows @ q) @ q.T
