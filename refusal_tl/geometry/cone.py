"""A refusal cone: an orthonormal basis and the directions inside it (docs/algorithms.md §6).

Context: the paper's Algorithm 2 finds N orthonormal vectors b_1 … b_N such that every
direction in their positive span (the *cone*) mediates refusal. A direction of the cone is
r = normalise(sᵀB) with non-negative weights s.

**Sampling** (``sample``): s = |z| / ‖z‖ with z ~ N(0, I_N) is uniform on the positive orthant
of the unit sphere in weight space; it is *not* a convex combination (Dirichlet weights),
which would crowd the samples toward the centre of the cone. The paper evaluates the same
seeded samples for every method, so ``sample(n, seed)`` is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry.provenance import Provenance
from refusal_tl.io import load_tensors, save_tensors, write_json


def orthant_weights(n: int, dims: int, seed: int) -> Float[Tensor, "n dims"]:
    """``n`` weight vectors uniform on the positive orthant of the unit sphere in ``dims`` dimensions."""
    z = torch.randn(n, dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (z.abs() / z.norm(dim=-1, keepdim=True)).float()


@dataclass
class RefusalCone:
    """An orthonormal ``basis`` (N × d_model rows), the layer where it was trained, and α (the
    addition strength, ‖DIM‖ in the paper)."""

    basis: Float[Tensor, "dims d_model"]
    layer: int
    alpha: float
    model: str
    weights_sha: str
    extra: dict = field(default_factory=dict)  # other metadata (kept from files written by other tools)
    dtype: str | None = None  # the model's dtype when it was trained (the basis is float32)
    provenance: Provenance = field(default_factory=Provenance)  # how it was trained and selected

    def __post_init__(self):
        gram = self.basis.double() @ self.basis.double().T
        if not torch.allclose(gram, torch.eye(len(gram), dtype=gram.dtype), atol=1e-4):
            raise RefusalTLError("a cone basis must have orthonormal rows; orthonormalise it first "
                                 "(refusal_tl.optim.gram_schmidt keeps the row order).")

    @property
    def dims(self) -> int:
        return self.basis.shape[0]

    def sample(self, n: int, seed: int = 42) -> Float[Tensor, "n d_model"]:
        """``n`` unit directions uniform on the cone (orthant weights mapped through the basis)."""
        r = orthant_weights(n, self.dims, seed) @ self.basis.float()
        return r / r.norm(dim=-1, keepdim=True)

    def contains(self, r: Float[Tensor, "*n d_model"], tol: float = 1e-4) -> Tensor:
        """Whether each ``r`` lies in the cone: in the span of the basis, with non-negative weights."""
        b = self.basis.to(r.dtype)
        unit = r / r.norm(dim=-1, keepdim=True)
        weights = unit @ b.T
        in_span = (weights @ b - unit).norm(dim=-1) <= tol
        return in_span & (weights >= -tol).all(dim=-1)

    def metadata(self) -> dict:
        return {"layer": self.layer, "alpha": self.alpha, "model": self.model, "weights_sha": self.weights_sha,
                "dtype": self.dtype, "dims": self.dims, "d_model": self.basis.shape[-1], "method": "cone",
                **self.provenance.to_dict(), **self.extra}

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, metadata inside) and ``path.json`` beside it, atomically."""
        path = Path(path)
        save_tensors(path, {"basis": self.basis.float()}, self.metadata())
        write_json(path.with_suffix(".json"), self.metadata())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RefusalCone":
        tensors, meta = load_tensors(path, "refusal_tl cone file")
        if "basis" not in tensors:
            raise RefusalTLError(f"{path} is not a refusal_tl cone file (no 'basis' tensor); "
                                 "a direction file goes with --direction, not --cone.")
        known = {"layer", "alpha", "model", "weights_sha", "dtype", "dims", "d_model", "method"}
        provenance, rest = Provenance.split({k: v for k, v in meta.items() if k not in known})
        return cls(tensors["basis"], meta.get("layer", -1), meta.get("alpha", 1.0), meta.get("model", "unknown"),
                   meta.get("weights_sha", "unknown"), rest, meta.get("dtype"), provenance)
