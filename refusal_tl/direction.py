"""The refusal direction as a value object, saved as safetensors with JSON metadata."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import atomic_write, write_json


@dataclass
class RefusalDirection:
    """An (unnormalised) refusal vector and where it came from.

    ``vector`` keeps its norm: α = ‖vector‖ is the addition strength used everywhere
    (SPEC B). ``layer`` is the source layer (and the addition layer), ``pos`` the EOI
    position (−5…−1) for DIM. ``compat_mode`` records that the bridge ran in raw (not
    TransformerLens-compatibility) coordinates.
    """

    vector: Float[Tensor, "d_model"]
    layer: int
    pos: int | None
    model: str
    weights_sha: str
    method: str = "dim"
    compat_mode: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    @property
    def unit(self) -> Float[Tensor, "d_model"]:
        return self.vector / self.vector.norm()

    def metadata(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k not in ("vector", "extra")}
        meta.update(norm=self.norm, d_model=self.vector.shape[-1], mode="raw" if not self.compat_mode else "compat")
        meta.update(self.extra)
        return meta

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (safetensors, metadata inside) and ``path.json`` beside it, atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        meta = self.metadata()
        str_meta = {"refusal_tl": json.dumps(meta)}
        atomic_write(path, lambda tmp: save_file(
            {"direction": self.vector.detach().float().cpu().contiguous()}, str(tmp), metadata=str_meta
        ))
        write_json(path.with_suffix(".json"), meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RefusalDirection":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise RefusalTLError(f"direction file {path} does not exist; run `refusal-tl dim` first.")
        try:
            with safe_open(str(path), framework="pt") as f:
                vector = f.get_tensor("direction")
                meta = json.loads((f.metadata() or {}).get("refusal_tl", "{}"))
        except Exception as err:  # safetensors raises its own error types
            raise RefusalTLError(f"{path} is not a refusal_tl direction file ({err}).") from None
        known = {"layer", "pos", "model", "weights_sha", "method", "compat_mode", "norm", "d_model", "mode"}
        return cls(
            vector=vector, layer=meta.get("layer", -1), pos=meta.get("pos"),
            model=meta.get("model", "unknown"), weights_sha=meta.get("weights_sha", "unknown"),
            method=meta.get("method", "dim"), compat_mode=meta.get("compat_mode", False),
            extra={k: v for k, v in meta.items() if k not in known},
        )
