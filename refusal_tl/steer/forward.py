"""Batched forward passes that compute only what is needed.

- ``last_logits`` runs the bridge with ``logits_to_keep=1`` so the unembedding (151k × d on
  Qwen) is applied to the last position only.
- ``batches`` sorts prompts by token length so each batch carries little padding.
- The chat template's system prompt (about half of every Qwen prompt) is run once per batch
  and shared through the KV cache (``prefill``); hooks apply to it as to every other token,
  so results equal a full forward (tested).
- ``capped=False`` returns Gemma 2's logits *before* its final soft-cap (``uncapped``), as
  the official RDO code reads them for every loss term; other models have no cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformers import DynamicCache

from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.hooks import Hook
from refusal_tl.steer.metrics import kl_last, refusal_score


def length_order(model: RefusalModel, instructions: list[str]) -> list[int]:
    """Indices of ``instructions`` sorted by tokenised length (for low-padding batches)."""
    lengths = [len(model.tokenizer(x, add_special_tokens=False).input_ids) for x in instructions]
    return sorted(range(len(instructions)), key=lambda i: lengths[i])


def batches(
    model: RefusalModel, instructions: list[str], batch_size: int, share_prefix: bool = True
) -> Iterator[tuple[list[int], Batch]]:
    """Yield (original indices, left-padded batch), shortest prompts first."""
    order = length_order(model, instructions)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, model.chat.tokenize([instructions[i] for i in idx], share_prefix=share_prefix).to(model.device)


def prefill(model: RefusalModel, batch: Batch, cache=None) -> tuple[object, Int[Tensor, "batch pos"]]:
    """Run the shared prefix once into a KV cache repeated over the batch.

    Returns the cache (``None`` without a prefix) and the attention mask that must
    accompany ``batch.ids`` from now on (prefix ones + the batch mask). Call it inside the
    hooks' scope so the prefix is intervened on too.
    """
    if batch.prefix is None:
        return cache, batch.mask

    cache = cache if cache is not None else DynamicCache(config=model.hf_model.config)
    ones = torch.ones_like(batch.prefix)
    _, cache = model.bridge(batch.prefix, attention_mask=ones, past_key_values=cache,
                            return_type="logits_and_cache", logits_to_keep=1)
    cache.batch_repeat_interleave(len(batch))
    return cache, torch.cat([ones.expand(len(batch), -1), batch.mask], dim=1)


def last_logits(
    model: RefusalModel, batch: Batch, fwd_hooks: Sequence[Hook] = ()
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the final prompt position under ``fwd_hooks`` (scoped to this call).

    Differentiable (hooks whose direction is a parameter get gradients); wrap the call in
    ``torch.no_grad()`` for inference.
    """
    return window_logits(model, batch, 1, list(fwd_hooks))[:, -1].float()


def map_last_logits(
    model: RefusalModel, instructions: list[str], fn: Callable[[Tensor, list[int]], Tensor],
    fwd_hooks: Sequence[Hook] = (), batch_size: int = 16, desc: str | None = None,
) -> Tensor:
    """Apply ``fn(last_logits, prompt_indices)`` batch by batch; results in prompt order.

    ``fn`` reduces a ``[batch, d_vocab]`` block to ``[batch, ...]`` (a score, a KL, the logits
    themselves), so full-vocabulary logits of many prompts never pile up in memory.
    """
    parts, order = [], []
    for idx, batch in tqdm(
        list(batches(model, instructions, batch_size)), desc=desc, disable=desc is None, leave=False
    ):
        with torch.no_grad():
            parts.append(fn(last_logits(model, batch, fwd_hooks), idx).cpu())
        order.extend(idx)
    return in_prompt_order(parts, order)


def in_prompt_order(parts: list[Tensor], order: list[int]) -> Tensor:
    """Concatenate per-batch results (rows in ``order``, as :func:`batches` yields them) back
    into prompt order."""
    return torch.cat(parts)[torch.argsort(torch.tensor(order))]


def refusal_scores(
    model: RefusalModel, instructions: list[str], fwd_hooks: Sequence[Hook] = (), batch_size: int = 16,
    desc: str | None = None,
) -> Float[Tensor, " n"]:
    """Per-prompt refusal score (docs/algorithms.md §1) at the last position under ``fwd_hooks``."""
    fn = lambda logits, idx: refusal_score(logits, model.chat.refusal_ids)
    return map_last_logits(model, instructions, fn, fwd_hooks, batch_size, desc)


def kl_to_base(
    model: RefusalModel, instructions: list[str], base_logits: Float[Tensor, "n d_vocab"],
    fwd_hooks: list[Hook], batch_size: int = 16,
) -> Float[Tensor, " n"]:
    """Per-prompt KL(p_base ‖ p_hooked) at the last position, ``base_logits`` in prompt order."""
    fn = lambda logits, idx: kl_last(base_logits[idx].to(logits.device), logits)
    return map_last_logits(model, instructions, fn, fwd_hooks, batch_size)


@contextmanager
def uncapped(model: RefusalModel, capped: bool = False):
    """Within the block the model returns logits before its final soft-cap (Gemma 2), unless ``capped``."""
    cfg = model.hf_model.config
    cap = getattr(cfg, "final_logit_softcapping", None)
    if capped or cap is None:
        yield
        return
    cfg.final_logit_softcapping = None
    try:
        yield
    finally:
        cfg.final_logit_softcapping = cap


def window_logits(
    model: RefusalModel, batch: Batch, width: int, fwd_hooks: Sequence[Hook] = (), capped: bool = True
) -> Float[Tensor, "batch width d_vocab"]:
    """Logits at the last ``width`` positions only (the unembedding skips the rest).

    Differentiable; the shared prefix is prefilled under the same hooks. ``capped=False``:
    Gemma 2's logits before the final soft-cap (see :func:`uncapped`).
    """
    with model.bridge.hooks(fwd_hooks=list(fwd_hooks)), uncapped(model, capped):
        cache, mask = prefill(model, batch)
        return model.bridge(batch.ids, attention_mask=mask, past_key_values=cache, logits_to_keep=width)


def layer_inputs(
    model: RefusalModel, batch: Batch, layer: int
) -> tuple[Float[Tensor, "batch pos d_model"], dict]:
    """The residual stream entering block ``layer`` and the keyword arguments the model
    passes to its blocks (attention mask, rotary embeddings, position ids).

    Runs only blocks ``0 … layer−1`` (``stop_at_layer``), without hooks and gradients.
    ``batch`` must carry no shared prefix: the residual covers every position.
    """
    if batch.prefix is not None:
        raise ValueError("layer_inputs needs the whole sequence: tokenise with share_prefix=False")
    seen: dict = {}

    def grab(module, args, kwargs):
        seen["kwargs"] = {k: v for k, v in kwargs.items() if k != "hidden_states"}

    handle = model.hf_model.model.layers[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            resid = model.bridge(batch.ids, attention_mask=batch.mask, stop_at_layer=layer)
    finally:
        handle.remove()
    kwargs = seen["kwargs"]
    kwargs.update(past_key_values=None, use_cache=False)
    return resid, kwargs


def logits_from(
    model: RefusalModel, resid: Float[Tensor, "batch pos d_model"], block_kwargs: dict, layer: int,
    width: int, fwd_hooks: Sequence[Hook] = (),
) -> Float[Tensor, "batch width d_vocab"]:
    """Resume the forward at block ``layer`` from ``resid`` (its ``resid_pre``) and return
    the logits of the last ``width`` positions, before any final soft-cap (Gemma 2).

    Blocks before ``layer`` are not run: when an intervention starts at ``layer`` (RDO's
    addition loss) they do not depend on it and their output can be cached once.
    ``block_kwargs`` come from :func:`layer_inputs` on a batch of the same shape; hooks
    fire as in a full forward (``blocks.{layer}.hook_resid_pre`` sees ``resid``).
    """
    cfg = model.hf_model.config
    kinds = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    window = getattr(cfg, "sliding_window", None)
    if len(kinds) > 1 and window is not None and resid.shape[1] > window:
        raise NotImplementedError(
            "logits_from reuses one attention mask for every block; this model mixes sliding-window "
            f"layers and the sequence ({resid.shape[1]}) is longer than the window ({window})."
        )
    hf = model.hf_model
    with model.bridge.hooks(fwd_hooks=list(fwd_hooks)):
        hidden = run_blocks(model, resid, layer, [block_kwargs] * model.n_layers)
        return hf.lm_head(hf.model.norm(hidden[:, -width:]))


def run_blocks(
    model: RefusalModel, hidden: Float[Tensor, "batch pos d_model"], first: int, block_kwargs: Sequence[dict],
    cache=None,
) -> Float[Tensor, "batch pos d_model"]:
    """Run blocks ``first …`` of the model on ``hidden`` (their hooks fire); block i gets
    ``block_kwargs[i]`` and reads and extends ``cache`` (a KV cache, or None)."""
    blocks = model.hf_model.model.layers
    for i, block in enumerate(blocks[first:], start=first):
        out = block(hidden, **{**block_kwargs[i], "past_key_values": cache})
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden
