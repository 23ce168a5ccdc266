"""Refusal rate against answer length (docs/algorithms.md §7): does a longer answer turn into a refusal?

A model can start to comply and refuse later, so a judge that reads 32 tokens may undercount
refusals. :func:`length_curve` decodes each condition once, greedily, to the longest limit and judges
the first L tokens of every answer for each limit L: a greedy answer of L tokens *is* the first L
tokens of the longer one (the batch is the same up to step L), so the curve costs one generation,
and finished rows leave the decode batch, so a long limit costs only what the answers need.
"""

from __future__ import annotations

import pandas as pd

from refusal_tl.eval.evaluate import Directions, direction_hooks
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.model import RefusalModel
from refusal_tl.stats import rate_ci
from refusal_tl.steer.generation import generate_ids

LENGTHS = (32, 64, 128, 256)


def length_curve(model: RefusalModel, prompts: list[str], conditions: dict[str, Directions],
                 lengths: tuple[int, ...] = LENGTHS, judge: Judge | None = None, batch_size: int = 16,
                 intervention: str = "ablate") -> pd.DataFrame:
    """One row per (condition, new tokens): the refusal rate of the answers cut at that many tokens,
    its 95 % interval, the mean answer length and the share of answers still running at the cut (no
    end-of-turn token within that many tokens).
    ``conditions`` maps a name to a direction (ablated) or None (no intervention)."""
    judge, rows = judge or SubstringJudge(), []
    for name, direction in conditions.items():
        hooks = direction_hooks(model, direction, intervention if direction else "none")
        ids = generate_ids(model, prompts, max(lengths), hooks, batch_size, desc=f"answers of {name}")
        for n in sorted(lengths):
            texts = [t.strip() for t in model.tokenizer.batch_decode([r[:n] for r in ids], skip_special_tokens=True)]
            scores = judge(prompts, texts)
            lo, hi = rate_ci(scores)
            rows.append(dict(condition=name, tokens=n, rate=sum(scores) / len(scores), lo=lo, hi=hi,
                             mean_length=sum(min(len(r), n) for r in ids) / len(ids),
                             cut=sum(len(r) >= n for r in ids) / len(ids), n=len(prompts)))
    return pd.DataFrame(rows)
