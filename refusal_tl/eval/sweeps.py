"""Experiments over a parameter: the addition-strength sweeps (paper Figs. 20 and 22)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.steer.forward import refusal_scores
from refusal_tl.steer.multi import multi_refusal_scores


def addition_sweep(
    model: RefusalModel, directions: dict[str, RefusalDirection], prompt_sets: dict[str, list[str]],
    alphas: list[float], max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 16,
) -> pd.DataFrame:
    """Refusal rate under +α·r̂ at each direction's layer, for every α, direction and prompt set.

    The paper's Fig. 22 (over-refusal vs. safety as the addition strength grows, on
    harmful vs. harmless-but-sensitive prompts). The paper's text is the only reference
    (not in the official code); α is used as given (the authors cast it to int). α = 0 is
    the unsteered model and is generated once per set.
    """
    judge = judge or SubstringJudge()
    rows = []
    for name, prompts in prompt_sets.items():
        base = evaluate_intervention(model, prompts, None, "none", max_new_tokens=max_new_tokens, judge=judge,
                                     batch_size=batch_size).rate
        for method, direction in directions.items():
            for alpha in alphas:
                rate = base if alpha == 0 else evaluate_intervention(
                    model, prompts, direction, "add", alpha=float(alpha), max_new_tokens=max_new_tokens,
                    judge=judge, batch_size=batch_size).rate
                rows.append(dict(method=method, prompts=name, alpha=float(alpha), rate=rate, n=len(prompts)))
    return pd.DataFrame(rows)


def alpha_grid(alpha0: float, n: int = 10) -> list[float]:
    """linspace(−α₀, α₀, n) with 0 inserted (the official grid of Fig. 20)."""
    return sorted({*np.linspace(-alpha0, alpha0, n).round(6).tolist(), 0.0})


def monotonic_sweep(
    model: RefusalModel, prompts: list[str], directions: dict[str, Float[Tensor, "n d_model"]], layer: int,
    alphas: list[float], batch_size: int = 64,
) -> pd.DataFrame:
    """Mean refusal score on ``prompts`` under +α·r̂ at ``layer`` (paper Fig. 20, forward only).

    ``directions`` maps a name (``DIM``, ``cone dim 3``, …) to unit-or-not rows (each is
    normalised); one output row per (name, α, direction) with the mean score over prompts,
    so a plot can show mean ± std over the cone's samples. α = 0 is the unsteered model.
    """
    base = float(refusal_scores(model, prompts, [], batch_size).mean())
    rows = []
    for name, vs in directions.items():
        units = vs.reshape(-1, vs.shape[-1]).float()
        units = units / units.norm(dim=-1, keepdim=True)
        for alpha in alphas:
            if alpha == 0:
                scores = [base] * len(units)
            else:
                scores = multi_refusal_scores(model, prompts, units, "add", layer, float(alpha), batch_size)
                scores = scores.mean(1).tolist()
            rows += [dict(method=name, alpha=float(alpha), sample=i, score=s) for i, s in enumerate(scores)]
    return pd.DataFrame(rows)
