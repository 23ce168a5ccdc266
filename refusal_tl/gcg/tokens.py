"""Suffix tokens for GCG (docs/algorithms.md §9): which tokens may be used, how candidates are
sampled from the token gradient, and which candidates survive re-tokenisation.

- :func:`allowed_tokens`: printable ASCII, not special, not empty; the filter nanoGCG applies
  (``allow_non_ascii=False``) plus the special tokens of chat templates (``<|im_end|>`` …);
- :func:`sample_candidates`: greedy coordinate gradient sampling (Zou et al. 2023): per
  position the ``topk`` allowed tokens with the most negative gradient; each candidate
  replaces ``n_replace`` random positions by one of them, seeded;
- :func:`stable`: keep candidates that decode and re-encode to the same ids, so the suffix
  a user pastes is the suffix that was optimised.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def allowed_tokens(tokenizer, vocab_size: int | None = None) -> Bool[Tensor, " vocab"]:
    """True for tokens a suffix may contain (printable ASCII text, no special token)."""
    n = vocab_size or len(tokenizer)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ok = torch.zeros(n, dtype=torch.bool)
    texts = tokenizer.batch_decode([[i] for i in range(min(n, len(tokenizer)))])
    for i, text in enumerate(texts):
        ok[i] = i not in special and bool(text.strip()) and text.isascii() and text.isprintable()
    return ok


def sample_candidates(ids: Int[Tensor, " n"], grad: Float[Tensor, "n vocab"], width: int, topk: int,
                      allowed: Bool[Tensor, " vocab"], n_replace: int = 1,
                      generator: torch.Generator | None = None) -> Int[Tensor, "width n"]:
    """``width`` candidate suffixes, each with ``n_replace`` positions changed to one of the
    ``topk`` allowed tokens with the most negative gradient at that position."""
    grad = grad.float().clone()
    grad[:, ~allowed.to(grad.device)] = float("inf")
    top = (-grad).topk(min(topk, int(allowed.sum())), dim=1).indices  # [n, topk]
    n = ids.shape[0]
    gen = dict(generator=generator, device="cpu")
    positions = torch.argsort(torch.rand(width, n, **gen), dim=1)[:, :n_replace].to(ids.device)  # [width, r]
    choice = torch.randint(0, top.shape[1], (width, n_replace, 1), **gen).to(ids.device)
    values = torch.gather(top[positions], 2, choice).squeeze(2)  # [width, r]
    return ids.repeat(width, 1).scatter_(1, positions, values)


def stable(candidates: Int[Tensor, "width n"], tokenizer) -> Bool[Tensor, " width"]:
    """True where the candidate decodes and re-encodes to the same ids."""
    texts = tokenizer.batch_decode(candidates.tolist())
    again = tokenizer(texts, add_special_tokens=False).input_ids
    return torch.tensor([a == c for a, c in zip(again, candidates.tolist())], dtype=torch.bool)
