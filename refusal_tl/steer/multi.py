"""Many directions in one forward: each batch row is a (direction, prompt) pair.

Context: a refusal cone is judged by hundreds of sampled directions (docs/algorithms.md §6),
each on the same prompts. Rather than one generate loop per direction, the rows of a batch
are (direction, prompt) pairs and the hooks take one direction per row
(:func:`~refusal_tl.steer.hooks.row_hooks`), so M directions × P prompts run as
⌈M·P / batch_size⌉ batches. Rows are ordered by prompt length with the directions of one
prompt side by side, so a batch carries little padding.

Per-row hooks cannot act on a prefix shared by every row (it runs once), so these batches
carry whole prompts (``share_prefix=False``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.forward import last_logits, length_order
from refusal_tl.steer.generation import greedy_tokens, stop_ids
from refusal_tl.steer.hooks import Intervention, row_hooks
from refusal_tl.steer.metrics import kl_last, refusal_score

Alpha = float | Float[Tensor, " n_dirs"] | None


def direction_batches(model: RefusalModel, prompts: list[str], n_dirs: int, batch_size: int
                      ) -> Iterator[tuple[list[int], list[int], Batch]]:
    """Yield (direction indices, prompt indices, whole-prompt batch) covering every pair once."""
    rows = [(m, p) for p in length_order(model, prompts) for m in range(n_dirs)]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        d_idx, p_idx = [m for m, _ in chunk], [p for _, p in chunk]
        yield d_idx, p_idx, model.chat.tokenize([prompts[p] for p in p_idx]).to(model.device)


def _hooks(model: RefusalModel, directions: Tensor, d_idx: list[int], kind: Intervention, layer: int | None,
           alpha: Alpha):
    a = alpha[d_idx] if isinstance(alpha, Tensor) else alpha
    return row_hooks(kind, directions[d_idx].to(model.device), model.n_layers, layer, a)


@torch.no_grad()
def map_rows(model: RefusalModel, prompts: list[str], directions: Float[Tensor, "n_dirs d_model"], kind: Intervention,
             fn: Callable[[Tensor, list[int], list[int]], Tensor], layer: int | None = None, alpha: Alpha = None,
             batch_size: int = 64, desc: str | None = None) -> Float[Tensor, "n_dirs n_prompts"]:
    """``fn(last_logits, direction_idx, prompt_idx) -> [rows]`` for every (direction, prompt) pair."""
    out = None
    todo = list(direction_batches(model, prompts, len(directions), batch_size))
    for d_idx, p_idx, batch in tqdm(todo, desc=desc, disable=desc is None, leave=False):
        logits = last_logits(model, batch, _hooks(model, directions, d_idx, kind, layer, alpha))
        values = fn(logits, d_idx, p_idx).cpu()
        if out is None:
            out = values.new_zeros((len(directions), len(prompts)))
        out[d_idx, p_idx] = values
    return out


def multi_refusal_scores(model: RefusalModel, prompts: list[str], directions: Float[Tensor, "n_dirs d_model"],
                         kind: Intervention, layer: int | None = None, alpha: Alpha = None, batch_size: int = 64,
                         desc: str | None = None) -> Float[Tensor, "n_dirs n_prompts"]:
    """Refusal score (docs/algorithms.md §1) of every prompt under every direction's intervention."""
    fn = lambda logits, d, p: refusal_score(logits, model.chat.refusal_ids)
    return map_rows(model, prompts, directions, kind, fn, layer, alpha, batch_size, desc)


def multi_kl(model: RefusalModel, prompts: list[str], base_logits: Float[Tensor, "n_prompts d_vocab"],
             directions: Float[Tensor, "n_dirs d_model"], batch_size: int = 64,
             desc: str | None = None) -> Float[Tensor, "n_dirs n_prompts"]:
    """Last-position KL(p_base ‖ p_ablated) per direction and prompt (``base_logits`` in prompt order)."""
    fn = lambda logits, d, p: kl_last(base_logits[p].to(logits.device), logits)
    return map_rows(model, prompts, directions, "ablate", fn, None, None, batch_size, desc)


def multi_generate(model: RefusalModel, prompts: list[str], directions: Float[Tensor, "n_dirs d_model"],
                   kind: Intervention, layer: int | None = None, alpha: Alpha = None, max_new_tokens: int = 32,
                   batch_size: int = 64, desc: str | None = "generating",
                   drop_finished: bool = True) -> list[list[str]]:
    """Greedy completions ``[direction][prompt]`` under each direction's intervention (a finished
    row leaves its batch; ``drop_finished=False`` keeps it, for the benchmark)."""
    out = [[""] * len(prompts) for _ in range(len(directions))]
    stops = set(stop_ids(model))
    todo = list(direction_batches(model, prompts, len(directions), batch_size))
    for d_idx, p_idx, batch in tqdm(todo, desc=desc, disable=desc is None, leave=False):
        hooks = lambda rows, d_idx=d_idx: _hooks(model, directions, [d_idx[r] for r in rows], kind, layer, alpha)
        ids = greedy_tokens(model, batch, max_new_tokens, hooks, drop_finished=drop_finished)
        for m, p, row in zip(d_idx, p_idx, ids.tolist()):
            end = next((k for k, t in enumerate(row) if t in stops), len(row))
            out[m][p] = model.tokenizer.decode(row[:end], skip_special_tokens=True).strip()
    return out
