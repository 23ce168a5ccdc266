"""Difference-in-means (DIM) refusal directions and prompt filtering (docs/algorithms.md §0–§1).

Context: for every layer l and post-instruction position i,
v[i, l] = mean_harmful resid_pre_l[i] − mean_harmless resid_pre_l[i], accumulated in
float64 and kept unnormalised.

Speed: one forward per prompt batch caches only the 5 EOI positions of the 24
``resid_pre`` hooks. With filtering on (the default) the same forward also yields the
baseline refusal score (unembedding at the last position only); without it the forward
stops at the last block and never reaches the unembedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import batches
from refusal_tl.steer.metrics import refusal_score


@dataclass
class EoiActivations:
    """Per-prompt EOI activations and baseline refusal scores (NaN when not computed)."""

    acts: Float[Tensor, "n pos layer d_model"]
    scores: Float[Tensor, " n"]


@dataclass
class DimCandidates:
    """The candidate grid: one unnormalised vector per (EOI position, layer)."""

    vectors: Float[Tensor, "pos layer d_model"]
    positions: list[int]
    n_harmful: int
    n_harmless: int

    def get(self, pos: int, layer: int) -> Float[Tensor, " d_model"]:
        return self.vectors[self.positions.index(pos), layer]


@torch.no_grad()
def eoi_activations(
    model: RefusalModel, instructions: list[str], batch_size: int = 16, with_scores: bool = True,
    desc: str | None = None,
) -> EoiActivations:
    """resid_pre of every layer at the EOI positions (float32), plus baseline refusal scores."""
    n_eoi, n_layers = model.chat.n_eoi, model.n_layers
    acts = torch.zeros(len(instructions), n_eoi, n_layers, model.d_model)
    scores = torch.full((len(instructions),), float("nan"), dtype=torch.float64)
    store: dict[int, Tensor] = {}

    def save(resid: Float[Tensor, "batch pos d_model"], hook, *, layer: int) -> None:
        store[layer] = resid[:, -n_eoi:].float().cpu()

    hooks = [(f"blocks.{l}.hook_resid_pre", partial(save, layer=l)) for l in range(n_layers)]
    todo = list(batches(model, instructions, batch_size, share_prefix=False))
    for idx, batch in tqdm(todo, desc=desc, disable=desc is None, leave=False):
        store.clear()
        if with_scores:
            logits = model.bridge.run_with_hooks(
                batch.ids, attention_mask=batch.mask, logits_to_keep=1, fwd_hooks=hooks
            )
            scores[idx] = refusal_score(logits[:, -1], model.chat.refusal_ids).cpu()
        else:  # stop before the last block: no last block, final norm or unembedding
            resid = model.bridge.run_with_hooks(
                batch.ids, attention_mask=batch.mask, stop_at_layer=n_layers - 1, fwd_hooks=hooks
            )
            store.setdefault(n_layers - 1, resid[:, -n_eoi:].float().cpu())  # = resid_pre[L-1]
        assert len(store) == n_layers, f"captured {len(store)} of {n_layers} layers"
        acts[idx] = torch.stack([store[l] for l in range(n_layers)], dim=2)
    return EoiActivations(acts, scores)


def mean_diff(
    harmful: Float[Tensor, "n pos layer d_model"], harmless: Float[Tensor, "m pos layer d_model"]
) -> Float[Tensor, "pos layer d_model"]:
    """Difference of means, accumulated in float64, returned as float32."""
    return (harmful.double().mean(0) - harmless.double().mean(0)).float()


def filter_by_score(
    harmful: Float[Tensor, " n"], harmless: Float[Tensor, " m"], truncate_harmless: bool = True
) -> tuple[list[int], list[int]]:
    """Keep harmful prompts the model refuses (score > 0) and harmless it complies with
    (score < 0), then truncate harmless to the harmful count (docs/algorithms.md §0, Arditi).

    ``truncate_harmless=False`` keeps every complying harmless prompt, as the official code
    does for the validation set (its harmless val is cut before filtering, not after).
    """
    keep_harm = [i for i, s in enumerate(harmful.tolist()) if s > 0]
    keep_safe = [i for i, s in enumerate(harmless.tolist()) if s < 0]
    return keep_harm, keep_safe[: len(keep_harm)] if truncate_harmless else keep_safe


def dim_candidates(harmful: EoiActivations, harmless: EoiActivations, positions: list[int]) -> DimCandidates:
    return DimCandidates(mean_diff(harmful.acts, harmless.acts), positions, len(harmful.acts), len(harmless.acts))
