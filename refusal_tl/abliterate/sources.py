"""The directions a run directory offers to the abliteration search (docs/algorithms.md §14):
DIM at every layer (the selected post-instruction position's candidate grid), RDO, RDO⊥, the
largest cone's basis and samples, and the RepInd directions; plus the harmless means that
biprojection needs. Only what the run has is offered."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jaxtyping import Float
from torch import Tensor

from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.extract import eoi_activations
from refusal_tl.dim.run import load_dim, prompt_sets
from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.io import json_digest, load_tensors, read_json, save_tensors
from refusal_tl.model import RefusalModel


@dataclass
class Sources:
    """Per-layer DIM vectors and harmless means at the DIM position, and the run's trained directions."""

    dim_grid: Float[Tensor, "n_layers d_model"]
    harmless_means: Float[Tensor, "n_layers d_model"]
    dim_layer: int
    named: dict[str, Float[Tensor, "k d_model"]] = field(default_factory=dict)  # "rdo", "rdo-perp", "repind-1", …
    cone: RefusalCone | None = None

    @property
    def repind(self) -> list[Tensor]:
        return [self.named[f"repind-{k}"][0] for k in range(1, 100) if f"repind-{k}" in self.named]

    def kinds(self) -> list[str]:
        """The direction sources the search can draw from."""
        out = ["dim", "dim-per-layer"] + [n for n in ("rdo", "rdo-perp") if n in self.named]
        return out + (["cone"] if self.cone is not None else []) + (["repind"] if self.repind else [])


def load_sources(run_dir: str | Path, model: RefusalModel, batch_size: int = 16) -> Sources:
    """Everything the run directory has; the harmless means are computed once and cached in
    ``RUN/search/harmless-means.safetensors`` (keyed by the model and the prompts)."""
    run_dir = Path(run_dir)
    dim = load_dim(run_dir, model)
    grid, meta = load_tensors(run_dir / "dim" / "candidates.safetensors", "DIM candidate grid")
    vectors = grid["vectors"][meta["positions"].index(dim.pos)] if dim.pos in meta["positions"] else None
    if vectors is None:
        raise RefusalTLError(f"the DIM grid of {run_dir} has no position {dim.pos}; rerun `refusal-tl dim`.")
    named = {}
    for name in ("rdo", "rdo-perp"):
        path = run_dir / name / "direction.safetensors"
        if path.is_file():
            named[name] = _checked(RefusalDirection.load(path), model).vector[None].float()
    for k in range(1, 100):
        path = run_dir / f"repind-{k}" / "direction.safetensors"
        if not path.is_file():
            break
        named[f"repind-{k}"] = _checked(RefusalDirection.load(path), model).vector[None].float()
    cones = sorted(run_dir.glob("cone-*/basis.safetensors"), key=lambda p: int(p.parent.name.split("-")[1]))
    cone = RefusalCone.load(cones[-1]) if cones else None
    return Sources(vectors.float(), harmless_means(run_dir, model, dim.pos, batch_size), dim.layer, named, cone)


def _checked(d: RefusalDirection, model: RefusalModel) -> RefusalDirection:
    d.check_width(model.d_model)
    return d


def harmless_means(run_dir: Path, model: RefusalModel, pos: int, batch_size: int = 16
                   ) -> Float[Tensor, "n_layers d_model"]:
    """Mean ``resid_pre`` of every layer at the DIM position over the run's harmless train prompts."""
    cfg = DimConfig(**read_json(run_dir / "dim" / "metadata.json", "DIM metadata")["config"])
    prompts = prompt_sets(cfg)["harmless_train"]
    key = json_digest({**model.key, "pos": pos, "prompts": prompts})
    path = run_dir / "search" / "harmless-means.safetensors"
    if path.is_file():
        tensors, meta = load_tensors(path, "harmless means")
        if meta.get("key") == key:
            return tensors["means"]
    acts = eoi_activations(model, prompts, batch_size, with_scores=False, desc="harmless means")
    means = acts.acts[:, model.chat.n_eoi + pos if pos < 0 else pos].double().mean(0).float()
    save_tensors(path, {"means": means}, {"key": key})
    return means
