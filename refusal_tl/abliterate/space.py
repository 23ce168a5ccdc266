"""The abliteration search's space (docs/algorithms.md §14): a trial's parameters, the edit they
describe, and the methods' standard ablations as parameters of the first trials."""

from __future__ import annotations

import optuna
import torch

from refusal_tl.abliterate.sources import Sources
from refusal_tl.errors import RefusalTLError
from refusal_tl.steer.edit import COMPONENTS, Edit, Kernel, biproject, fractional_direction

# cone_vector: < dims a basis vector, CONE_PICKS the whole cone (its span), otherwise a direction sampled
# from the cone (seeded by the index)
CONE_PICKS = 8
SPACE_VERSION = 1  # bump when the search space changes: a journal of another space is not resumed


def suggest(trial: optuna.Trial, sources: Sources, n_layers: int) -> dict:
    """Every parameter, always sampled (multivariate TPE needs a fixed space, as heretic notes).

    ``kernel``: ``heretic`` (its per-layer kernel, no embedding edit) or ``flat`` (each component's
    ``max_weight`` at every layer, and the embedding at the attention's: with weights 1, the standard
    ablation of docs/algorithms.md §2)."""
    last = n_layers - 1
    lo, hi = min(0.4 * last, sources.dim_layer), max(0.9 * last, sources.dim_layer)  # the DIM layer is inside
    p = {"source": trial.suggest_categorical("source", sources.kinds()),
         "direction_index": trial.suggest_float("direction_index", lo, hi),
         "cone_vector": trial.suggest_int("cone_vector", 0, CONE_PICKS),
         "repind_k": trial.suggest_int("repind_k", 1, max(1, len(sources.repind))),
         "biprojection": trial.suggest_categorical("biprojection", [False, True]),
         "norm_preserving": trial.suggest_categorical("norm_preserving", [False, True]),
         "kernel": trial.suggest_categorical("kernel", ["heretic", "flat"])}
    for comp in COMPONENTS:  # heretic's ranges; min_weight as a fraction of max_weight
        p[f"{comp}.max_weight"] = trial.suggest_float(f"{comp}.max_weight", 0.8, 1.5)
        p[f"{comp}.max_weight_position"] = trial.suggest_float(f"{comp}.max_weight_position", 0.6 * last, 1.0 * last)
        p[f"{comp}.min_weight"] = trial.suggest_float(f"{comp}.min_weight", 0.0, 1.0)
        p[f"{comp}.min_weight_distance"] = trial.suggest_float(f"{comp}.min_weight_distance", 1.0, max(1.0, 0.6 * last))
    return p


def directions_of(params: dict, sources: Sources) -> torch.Tensor:
    """The trial's direction(s): ``[d]``, a span ``[k, d]`` or one per layer ``[L, 1, d]``."""
    kind, bi = params["source"], params["biprojection"]
    means = sources.harmless_means
    if kind == "dim-per-layer":
        units = sources.dim_grid
        units = torch.stack([biproject(u, m) for u, m in zip(units, means)]) if bi else units
        return units[:, None]
    if kind == "dim":
        idx = params["direction_index"]
        grid = torch.stack([biproject(u, m) for u, m in zip(sources.dim_grid, means)]) if bi else sources.dim_grid
        return fractional_direction(grid, idx)
    if kind in ("rdo", "rdo-perp"):
        d = sources.named[kind][0]
    elif kind == "cone":
        cone, i = sources.cone, params["cone_vector"]
        d = (cone.basis[i].float() if i < cone.dims else cone.basis.float() if i == CONE_PICKS else
             cone.sample(1, seed=i)[0])
    elif kind == "repind":
        d = torch.stack(sources.repind[: params["repind_k"]])
    else:
        raise RefusalTLError(f"unknown direction source {kind!r}; choose one of {', '.join(sources.kinds())}.")
    return biproject(d, means[sources.dim_layer]) if bi else d


def edit_of(params: dict, sources: Sources, n_layers: int) -> Edit:
    """The :class:`Edit` a trial's parameters describe."""
    flat = params.get("kernel") == "flat"
    kernels = {c: Kernel.flat(params[f"{c}.max_weight"]) if flat else
               Kernel(params[f"{c}.max_weight"], params[f"{c}.max_weight_position"],
                      params[f"{c}.min_weight"] * params[f"{c}.max_weight"], params[f"{c}.min_weight_distance"])
               for c in COMPONENTS}
    return Edit.of(directions_of(params, sources), n_layers, attn=kernels["attn"], mlp=kernels["mlp"],
                   embed=params["attn.max_weight"] if flat else 0.0, norm_preserving=params["norm_preserving"])


def reference_params(sources: Sources, n_layers: int) -> dict[str, dict]:
    """The methods' own directions, ablated the standard way (flat weight 1, the embedding too), as
    trial parameters: the first trials of every search, marked on the front."""
    last = n_layers - 1
    base = {"direction_index": float(sources.dim_layer), "cone_vector": CONE_PICKS, "repind_k": 1,
            "biprojection": False, "norm_preserving": False, "kernel": "flat",
            **{f"{c}.{k}": v for c in COMPONENTS for k, v in
               (("max_weight", 1.0), ("max_weight_position", last), ("min_weight", 1.0),
                ("min_weight_distance", max(1.0, 0.6 * last)))}}
    cone = f"cone-{sources.cone.dims if sources.cone else 0}"
    names = {"dim": "DIM", "rdo": "RDO", "cone": cone, "repind": "RepInd-1"}
    return {label: {**base, "source": kind} for kind, label in names.items() if kind in sources.kinds()}
