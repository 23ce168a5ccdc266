"""Abliteration edits: which residual writes lose which direction, how strongly, and how the
edit is applied (docs/algorithms.md §14).

An :class:`Edit` holds, per layer, an orthonormal basis B_l (one direction, or a span) and a
weight per residual writer: the attention output projection (``o_proj``, TransformerLens
``hook_attn_out``) and the MLP down projection (``down_proj``, ``hook_mlp_out``), plus the
embedding. Every variant is one **output map** of a writer, y ↦ s_out ⊙ (z − w Bᵀ(B z)) with
z = s_in ⊙ y:

- **projection** (directional ablation scaled by w): s_in = s_out = 1. With w = 1 on every
  writer this is the standard ablation of docs/algorithms.md §2.
- **norm-preserving** (MPOA, heretic 1.4's default "full" row normalisation): the rows of W
  are normalised (s_in = 1/n, n the row norms), the rank-k update applied, the rows
  renormalised and the original norms restored (s_out = n/m, m the updated rows' norms).
  That is a fixed linear map of the writer's output, but not a projection of the residual.

Because every variant is a linear map of the writer's output, the same pure function serves the
hook (:func:`edit_hooks`) and the weight edit (:func:`apply_edit`, columns of W and the bias), and
both are exact equivalents (tested) on models whose writers feed the residual stream directly
(Qwen, Llama; Gemma 2's post-norms are refused for the weight edit).

The per-layer weights come from heretic's kernel (:class:`Kernel`); the direction may be
**biprojected** (:func:`biproject`: orthogonal to the harmless mean at its layer) and taken at a
**fractional layer index** (:func:`fractional_direction`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.steer.hooks import Hook, orthonormal_basis

COMPONENTS = ("attn", "mlp")  # the residual writers a kernel weights: o_proj, down_proj
HOOK_POINTS = {"attn": "hook_attn_out", "mlp": "hook_mlp_out"}
_WRITERS = {"attn": re.compile(r"layers\.(\d+)\.self_attn\.o_proj$"),
            "mlp": re.compile(r"layers\.(\d+)\.mlp\.down_proj$")}


@dataclass(frozen=True)
class Kernel:
    """heretic's per-layer weight (its ``AbliterationParameters``): ``max_weight`` at layer
    ``max_weight_position``, falling linearly to ``min_weight`` at ``min_weight_distance``
    layers away, 0 beyond. :meth:`flat` gives the same weight at every layer."""

    max_weight: float = 1.0
    max_weight_position: float = 0.0
    min_weight: float = 1.0
    min_weight_distance: float = math.inf

    def __post_init__(self):
        if self.min_weight_distance <= 0:
            raise RefusalTLError(f"min_weight_distance must be > 0, got {self.min_weight_distance}.")

    @classmethod
    def flat(cls, weight: float = 1.0) -> "Kernel":
        return cls(weight, 0.0, weight, math.inf)

    def weights(self, n_layers: int) -> Float[Tensor, " n_layers"]:
        distance = (torch.arange(n_layers, dtype=torch.float64) - self.max_weight_position).abs()
        frac = distance / self.min_weight_distance if math.isfinite(self.min_weight_distance) else 0 * distance
        w = self.max_weight + frac * (self.min_weight - self.max_weight)
        return torch.where(distance > self.min_weight_distance, 0.0, w).float()


@dataclass
class Edit:
    """What an abliteration does: ``bases[l]`` (``[k, d]`` orthonormal rows) removed from the
    attention and MLP writes of layer l with weights ``attn[l]``, ``mlp[l]``, and from the
    embedding with ``embed`` (layer 0's basis); ``norm_preserving`` selects MPOA."""

    bases: Float[Tensor, "n_layers k d_model"]
    attn: Float[Tensor, " n_layers"]
    mlp: Float[Tensor, " n_layers"]
    embed: float = 0.0
    norm_preserving: bool = False

    def __post_init__(self):
        if self.bases.dim() != 3 or not (len(self.attn) == len(self.mlp) == self.bases.shape[0]):
            raise RefusalTLError(f"an edit needs one basis and one weight per layer; got bases "
                                 f"{tuple(self.bases.shape)}, {len(self.attn)} attention and "
                                 f"{len(self.mlp)} MLP weights.")

    @classmethod
    def of(cls, directions: Float[Tensor, "*k d_model"] | Float[Tensor, "n_layers k d_model"], n_layers: int,
           attn: Kernel | None = None, mlp: Kernel | None = None, embed: float = 0.0,
           norm_preserving: bool = False) -> "Edit":
        """One direction or span for every layer (``[d]``, ``[k, d]``), or one per layer (``[L, k, d]``)."""
        if directions.dim() == 3:
            if directions.shape[0] != n_layers:
                raise RefusalTLError(f"{directions.shape[0]} per-layer directions for a model of {n_layers} layers.")
            # a layer without a direction (DIM at layer 0 is 0: both classes share the template's embeddings)
            # is left unedited
            bases = torch.stack([orthonormal_basis(d) if d.norm() > 1e-8 else torch.zeros_like(d).float()
                                 for d in directions])
        else:
            bases = orthonormal_basis(directions)[None].expand(n_layers, -1, -1)
        attn, mlp = attn or Kernel.flat(), mlp or Kernel.flat()
        return cls(bases.float(), attn.weights(n_layers), mlp.weights(n_layers), embed, norm_preserving)

    @classmethod
    def ablation(cls, directions: Tensor, n_layers: int) -> "Edit":
        """Standard directional ablation (docs/algorithms.md §2): every writer and the embedding, weight 1."""
        return cls.of(directions, n_layers, embed=1.0)

    def width_check(self, d_model: int) -> None:
        if self.bases.shape[-1] != d_model:
            raise RefusalTLError(f"the edit's directions have width {self.bases.shape[-1]} but the model's d_model is "
                                 f"{d_model}; were they made for another model?")


def biproject(direction: Float[Tensor, "*k d_model"], harmless_mean: Float[Tensor, " d_model"]
              ) -> Float[Tensor, "*k d_model"]:
    """The direction(s) made orthogonal to the harmless mean at their layer, renormalised
    (heretic's ``orthogonalize_direction``): only the part of r that harmless activations do not
    carry is removed. Rows keep their norms."""
    m = harmless_mean.float() / harmless_mean.float().norm()
    d = direction.float()
    out = d - (d @ m)[..., None] * m
    return out / out.norm(dim=-1, keepdim=True) * d.norm(dim=-1, keepdim=True)


def fractional_direction(per_layer: Float[Tensor, "n_layers d_model"], index: float) -> Float[Tensor, " d_model"]:
    """The unit direction at a fractional layer index: per-layer directions (unit-normalised)
    interpolated linearly between ⌊index⌋ and ⌊index⌋+1, renormalised."""
    if not 0 <= index <= per_layer.shape[0] - 1:
        raise RefusalTLError(f"direction index {index} is outside the model's layers 0 … {per_layer.shape[0] - 1}.")
    units = per_layer.float() / per_layer.float().norm(dim=-1, keepdim=True)
    lo = min(int(index), per_layer.shape[0] - 2) if per_layer.shape[0] > 1 else 0
    frac = index - lo
    d = units[lo] if per_layer.shape[0] == 1 else torch.lerp(units[lo], units[lo + 1], frac)
    return d / d.norm()


def output_map(y: Float[Tensor, "... d_model"], basis: Float[Tensor, "k d_model"], weight: float | Tensor,
               s_in: Float[Tensor, " d_model"] | None = None, s_out: Float[Tensor, " d_model"] | None = None
               ) -> Float[Tensor, "... d_model"]:
    """y ↦ s_out ⊙ (z − w Bᵀ(B z)), z = s_in ⊙ y: every variant's action on one writer's output."""
    z = y if s_in is None else y * s_in.to(y.dtype)
    b = basis.to(y.dtype)
    z = z - weight * ((z @ b.T) @ b)
    return z if s_out is None else z * s_out.to(y.dtype)


def edit_hook(act: Float[Tensor, "batch pos d_model"], hook=None, *, basis: Tensor, weight: float,
              s_in: Tensor | None = None, s_out: Tensor | None = None) -> Float[Tensor, "batch pos d_model"]:
    """The edit of one writer applied to its output (TransformerLens hook)."""
    return output_map(act, basis, weight, s_in, s_out)


def writers(hf_model) -> dict[tuple[int, str], torch.nn.Linear]:
    """The residual writers ``(layer, "attn"|"mlp") -> Linear`` of a Qwen/Llama-style model
    (also when wrapped by the TransformerLens bridge)."""
    out = {}
    for name, module in hf_model.named_modules():
        name = name.replace("._original_component", "")
        for comp, pattern in _WRITERS.items():
            m = pattern.search(name)
            if m and isinstance(module, torch.nn.Linear):
                out[(int(m.group(1)), comp)] = module
    return out


def norm_scales(weight: Float[Tensor, "d_model d_in"], basis: Float[Tensor, "k d_model"], w: float
                ) -> tuple[Float[Tensor, " d_model"], Float[Tensor, " d_model"]]:
    """MPOA's s_in = 1/n and s_out = n/m for one writer's weight (rows = output coordinates)."""
    W = weight.float()
    n = W.norm(dim=1)
    updated = output_map(W.T, basis.float(), w, 1 / n).T  # rows normalised, rank-k update
    m = updated.norm(dim=1)
    return 1 / n, n / m


def _maps(hf_model, edit: Edit) -> dict[tuple[int, str], dict]:
    """The output map's arguments for every writer with a non-zero weight."""
    found = writers(hf_model)
    n_layers = edit.bases.shape[0]
    if sorted(found) != sorted((l, c) for l in range(n_layers) for c in COMPONENTS):
        raise RefusalTLError("abliteration edits need o_proj and down_proj in every layer (Qwen-, Llama-style "
                             f"models); found {len(found)} of {2 * n_layers} writers.")
    out = {}
    for (l, comp), module in found.items():
        w = float(getattr(edit, comp)[l])
        if w == 0:
            continue
        basis = edit.bases[l].to(module.weight.device)
        s_in, s_out = norm_scales(module.weight.detach(), basis, w) if edit.norm_preserving else (None, None)
        out[(l, comp)] = dict(basis=basis, weight=w, s_in=s_in, s_out=s_out)
    return out


def edit_hooks(model, edit: Edit) -> list[Hook]:
    """The edit as hooks on ``blocks.{l}.hook_attn_out`` / ``hook_mlp_out`` (and the embedding's
    write, ``blocks.0.hook_resid_pre``) of a :class:`~refusal_tl.model.RefusalModel`."""
    edit.width_check(model.d_model)
    hooks = [(f"blocks.{l}.{HOOK_POINTS[comp]}", partial(edit_hook, **kw)) for (l, comp), kw in
             sorted(_maps(model.hf_model, edit).items())]
    if edit.embed:
        hooks.insert(0, ("blocks.0.hook_resid_pre",
                         partial(edit_hook, basis=edit.bases[0].to(model.device), weight=edit.embed)))
    return hooks


@torch.no_grad()
def apply_edit(hf_model, edit: Edit) -> None:
    """Bake ``edit`` into the weights (**in place**): every writer's W and bias go through the same
    output map as the hook, computed in float32 and rounded once to the weights' dtype."""
    if any("post_feedforward_layernorm" in n for n, _ in hf_model.named_parameters()):
        raise RefusalTLError("abliteration weight edits are not exact for models with post-norms (Gemma 2); "
                             "use the edit's hooks instead.")
    maps = _maps(hf_model, edit)  # computed on the unedited weights
    modules = writers(hf_model)
    for key, kw in maps.items():
        module = modules[key]
        module.weight.copy_(output_map(module.weight.float().T, **kw).T)
        if module.bias is not None:
            module.bias.copy_(output_map(module.bias.float(), **kw))
    if edit.embed:
        emb = hf_model.get_input_embeddings().weight
        emb.copy_(output_map(emb.float(), edit.bases[0].to(emb.device), edit.embed))
