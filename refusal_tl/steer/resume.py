"""Forwards that resume at a block from one cached clean run.

An intervention that starts at block l (activation addition at ``resid_pre`` of l, the
*induce* score of direction selection, docs/algorithms.md §3) leaves blocks 0 … l−1 as they
are in the clean model. :func:`clean_states` runs the clean model once per batch, shared
system-prompt prefix included, and keeps every block's input; :func:`resumed_refusal_scores`
then runs only blocks l … L−1: on the prefix first (one row, into a fresh KV cache), then on
the batch, which reads the prefix through that cache exactly as a full forward does. The
same shapes go through the same kernels, so the scores equal a full forward's (tested).

Memory: the inputs of every block for every prompt, n × tokens × L × d floats (under
100 MB for 32 prompts on Qwen2.5-0.5B).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import DynamicCache

from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import batches, in_prompt_order, prefill, run_blocks
from refusal_tl.steer.hooks import Hook
from refusal_tl.steer.metrics import refusal_score


@dataclass
class BlockInputs:
    """What every block received in a clean forward: hidden states and keyword arguments
    (masks, rotary embeddings, positions; the KV cache itself is left out)."""

    hidden: list[Float[Tensor, "batch pos d_model"]]
    kwargs: list[dict]


@dataclass
class CleanBatch:
    """One batch of a clean run: prompt indices, the prefix's and the rows' block inputs."""

    idx: list[int]
    prefix: BlockInputs | None
    rows: BlockInputs


@contextmanager
def _recording(model: RefusalModel) -> Iterator[BlockInputs]:
    """Within the block every block's inputs are appended to the yielded :class:`BlockInputs`."""
    seen = BlockInputs([], [])

    def grab(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        seen.hidden.append(hidden.detach())
        seen.kwargs.append({k: v for k, v in kwargs.items() if k not in ("hidden_states", "past_key_values")})

    handles = [b.register_forward_pre_hook(grab, with_kwargs=True) for b in model.hf_model.model.layers]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def clean_states(
    model: RefusalModel, instructions: list[str], batch_size: int = 16
) -> tuple[Float[Tensor, "n d_vocab"], list[CleanBatch]]:
    """Clean last-position logits (in prompt order) and every batch's block inputs."""
    states, parts, order = [], [], []
    for idx, batch in batches(model, instructions, batch_size):
        with _recording(model) as prefix:
            cache, mask = prefill(model, batch)
        with _recording(model) as rows:
            logits = model.bridge(batch.ids, attention_mask=mask, past_key_values=cache, logits_to_keep=1)
        states.append(CleanBatch(idx, prefix if batch.prefix is not None else None, rows))
        parts.append(logits[:, -1].float().cpu())
        order.extend(idx)
    return in_prompt_order(parts, order), states


def _block_of(hook_name: str) -> int | None:
    """The block index of a ``blocks.{i}.…`` hook name (None for embedding or final hooks)."""
    parts = hook_name.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


def resumed_last_logits(
    model: RefusalModel, state: CleanBatch, layer: int, fwd_hooks: Sequence[Hook] = ()
) -> Float[Tensor, "batch d_vocab"]:
    """Last-position logits of one clean batch when ``fwd_hooks`` act from block ``layer`` on.

    Only blocks ``layer …`` run, so a hook on an earlier block is refused (it would never fire).
    """
    early = [name for name, _ in fwd_hooks if (block := _block_of(name)) is not None and block < layer]
    if early:
        raise ValueError(f"hooks {early} act before block {layer}, where this forward resumes; "
                         "use a full forward (refusal_tl.steer.forward) for them.")
    hf = model.hf_model
    cache = DynamicCache(config=hf.config) if state.prefix is not None else None
    with model.bridge.hooks(fwd_hooks=list(fwd_hooks)):
        if state.prefix is not None:
            run_blocks(model, state.prefix.hidden[layer], layer, state.prefix.kwargs, cache)
            cache.batch_repeat_interleave(len(state.idx))
        hidden = run_blocks(model, state.rows.hidden[layer], layer, state.rows.kwargs, cache)
        logits = hf.lm_head(hf.model.norm(hidden)[:, -1:])
    cap = getattr(hf.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits[:, -1].float()


@torch.no_grad()
def resumed_refusal_scores(
    model: RefusalModel, states: list[CleanBatch], layer: int, fwd_hooks: Sequence[Hook] = ()
) -> Float[Tensor, " n"]:
    """Per-prompt refusal score (docs/algorithms.md §1) under hooks that start at ``layer``."""
    parts, order = [], []
    for state in states:
        logits = resumed_last_logits(model, state, layer, fwd_hooks)
        parts.append(refusal_score(logits, model.chat.refusal_ids).cpu())
        order.extend(state.idx)
    return in_prompt_order(parts, order)
