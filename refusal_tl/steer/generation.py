"""Batched generation under any intervention, with the KV cache: greedy, or sampled at a
temperature (the paper's Fig. 5 baseline).

The hooks are the same pure functions used everywhere else, scoped with
``bridge.hooks(...)`` around the prefill and around each decode step (so streams under
different hooks can interleave); with the cache each step feeds one new position, which the
position-agnostic hooks handle. A row that has produced an end-of-turn token leaves the
batch (its KV-cache rows are dropped), so finished answers cost nothing while the longer ones
go on; decoding stops once every row has ended. Per-row interventions (one direction per row,
:mod:`refusal_tl.steer.multi`) pass their hooks as a function of the rows still running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformers import DynamicCache

from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.forward import batches, prefill
from refusal_tl.steer.hooks import Hook

Hooks = Sequence[Hook] | Callable[[list[int]], Sequence[Hook]]  # fixed, or those of the given batch rows


def stop_ids(model: RefusalModel) -> list[int]:
    """Token ids that end an assistant turn (eos plus the template's end-of-turn token)."""
    tok = model.tokenizer
    ids = {tok.eos_token_id}
    for name in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>"):
        tid = tok.convert_tokens_to_ids(name)
        if isinstance(tid, int) and tid != tok.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def decode_steps(
    model: RefusalModel, batch: Batch, max_new_tokens: int, fwd_hooks: Hooks = (),
    stop_at_eos: bool = True, temperature: float = 0.0, generator: torch.Generator | None = None,
    drop_finished: bool = True,
) -> Iterator[Int[Tensor, " batch"]]:
    """Yield the next token of every row, one decode step at a time (pad id after a row has
    ended): the argmax, or with ``temperature > 0`` a draw from softmax(logits / T) using
    ``generator``. The hooks are scoped to each forward, so several streams under different
    hooks can be interleaved (``refusal-tl chat`` decodes two side by side). ``fwd_hooks`` is a
    list, or a function giving the hooks of a list of the batch's row indices (per-row
    interventions), called again whenever finished rows leave the batch. ``drop_finished=False``
    keeps finished rows in the batch until every row has ended (the same tokens, slower; for
    ``benchmarks/bench_decode.py``)."""
    bridge, stops = model.bridge, torch.tensor(stop_ids(model), device=model.device)
    pad = model.tokenizer.pad_token_id
    hooks_of = fwd_hooks if callable(fwd_hooks) else (lambda rows: fwd_hooks)
    live = torch.arange(len(batch), device=model.device)  # the batch rows still in the forward
    done = torch.zeros(len(batch), dtype=torch.bool, device=model.device)  # ended, among ``live``
    hooks = list(hooks_of(live.tolist()))
    with bridge.hooks(fwd_hooks=hooks):
        cache, mask = prefill(model, batch, DynamicCache(config=model.hf_model.config))
    ids = batch.ids
    for _ in range(max_new_tokens):
        with bridge.hooks(fwd_hooks=hooks):
            logits, cache = bridge(ids, attention_mask=mask, past_key_values=cache,
                                   return_type="logits_and_cache", logits_to_keep=1)
        nxt = _pick(logits[:, -1], temperature, generator)
        if stop_at_eos:
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            done |= torch.isin(nxt, stops)
        yield torch.full((len(batch),), pad, dtype=nxt.dtype, device=nxt.device).index_copy_(0, live, nxt)
        if done.all():
            return
        if drop_finished and done.any():  # the finished rows leave the batch and the cache
            keep = (~done).nonzero()[:, 0]
            cache.batch_select_indices(keep)
            live, mask, nxt, done = live[keep], mask[keep], nxt[keep], done[keep]
            hooks = list(hooks_of(live.tolist()))
        ids, mask = nxt[:, None], torch.cat([mask, torch.ones_like(nxt)[:, None]], dim=1)


def _pick(logits: Float[Tensor, "batch d_vocab"], temperature: float,
          generator: torch.Generator | None) -> Int[Tensor, " batch"]:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def greedy_tokens(
    model: RefusalModel, batch: Batch, max_new_tokens: int, fwd_hooks: Hooks = (),
    stop_at_eos: bool = True, temperature: float = 0.0, generator: torch.Generator | None = None,
    drop_finished: bool = True,
) -> Int[Tensor, "batch new"]:
    """Continuation ids of a left-padded batch (pad id after a sequence ends); greedy unless
    ``temperature > 0``. ``stop_at_eos=False`` always decodes ``max_new_tokens`` steps (benchmarks);
    ``fwd_hooks`` and ``drop_finished`` as in :func:`decode_steps`.
    """
    steps = decode_steps(model, batch, max_new_tokens, fwd_hooks, stop_at_eos, temperature, generator,
                         drop_finished)
    return torch.stack(list(steps), dim=1)


def generate_ids(
    model: RefusalModel, instructions: list[str], max_new_tokens: int = 64,
    fwd_hooks: Sequence[Hook] = (), batch_size: int = 16, desc: str | None = "generating",
    temperature: float = 0.0, seed: int = 0,
) -> list[list[int]]:
    """Continuation ids per instruction (in order), cut after the first stop token; greedy, or
    sampled at ``temperature`` from one generator seeded with ``seed``."""
    stops = set(stop_ids(model))
    gen = torch.Generator(model.device).manual_seed(seed) if temperature > 0 else None
    out: list[list[int] | None] = [None] * len(instructions)
    todo = list(batches(model, instructions, batch_size))
    for idx, batch in tqdm(todo, desc=desc, disable=desc is None, leave=False):
        for i, row in zip(idx, greedy_tokens(model, batch, max_new_tokens, fwd_hooks,
                                             temperature=temperature, generator=gen).tolist()):
            end = next((k for k, t in enumerate(row) if t in stops), len(row))
            out[i] = row[:end]
    return out


def generate(
    model: RefusalModel, instructions: list[str], max_new_tokens: int = 64,
    fwd_hooks: Sequence[Hook] = (), batch_size: int = 16, desc: str | None = "generating",
    temperature: float = 0.0, seed: int = 0,
) -> list[str]:
    """Completions (special tokens skipped, stripped) in the order of ``instructions``; greedy
    unless ``temperature > 0``."""
    ids = generate_ids(model, instructions, max_new_tokens, fwd_hooks, batch_size, desc, temperature, seed)
    return [t.strip() for t in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]
