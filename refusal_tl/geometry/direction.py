"""The refusal direction as a value object, saved as safetensors with JSON metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry.provenance import Provenance
from refusal_tl.io import load_tensors, save_tensors, write_json

KNOWN = ("layer", "pos", "model", "weights_sha", "method", "compat_mode", "dtype", "norm", "d_model", "mode")


@dataclass
class RefusalDirection:
    """An (unnormalised) refusal vector and where it came from.

    ``vector`` keeps its norm: α = ‖vector‖ is the addition strength used everywhere
    (docs/algorithms.md §1). ``layer`` is the source layer (and the addition layer), ``pos``
    the EOI position (−5…−1) for DIM. ``compat_mode`` records that the bridge ran in raw
    (not TransformerLens-compatibility) coordinates; ``dtype`` the model's dtype when it was found
    (the vector itself is always float32); ``provenance`` how it was found (typed), ``extra``
    any other metadata (kept from files written by other tools).
    """

    vector: Float[Tensor, " d_model"]
    layer: int
    pos: int | None
    model: str
    weights_sha: str
    method: str = "dim"
    compat_mode: bool = False
    dtype: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    extra: dict = field(default_factory=dict)

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    @property
    def unit(self) -> Float[Tensor, " d_model"]:
        return self.vector / self.vector.norm()

    def metadata(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k not in ("vector", "extra", "provenance")}
        meta.update(norm=self.norm, d_model=self.vector.shape[-1], mode="raw" if not self.compat_mode else "compat")
        return meta | self.provenance.to_dict() | self.extra

    def check_width(self, d_model: int) -> None:
        if self.vector.shape[-1] != d_model:
            raise RefusalTLError(
                f"direction has width {self.vector.shape[-1]} but the model's d_model is {d_model}; "
                "was it extracted from another model?"
            )

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, metadata inside) and ``path.json`` beside it, atomically."""
        path = Path(path)
        meta = self.metadata()
        save_tensors(path, {"direction": self.vector.float()}, meta)
        write_json(path.with_suffix(".json"), meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RefusalDirection":
        path = Path(path)
        if not path.is_file():
            raise RefusalTLError(f"direction file {path} does not exist; run `refusal-tl dim` first.")
        tensors, meta = load_tensors(path, "refusal_tl direction file")
        if "direction" not in tensors:
            raise RefusalTLError(f"{path} is not a refusal_tl direction file (no 'direction' tensor).")
        provenance, rest = Provenance.split({k: v for k, v in meta.items() if k not in KNOWN})
        return cls(
            vector=tensors["direction"], layer=meta.get("layer", -1), pos=meta.get("pos"),
            model=meta.get("model", "unknown"), weights_sha=meta.get("weights_sha", "unknown"),
            method=meta.get("method", "dim"), compat_mode=meta.get("compat_mode", False), dtype=meta.get("dtype"),
            provenance=provenance, extra=rest,
        )
