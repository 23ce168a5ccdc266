"""Experiments over a parameter: the addition-strength sweep (paper Fig. 22)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel


def addition_sweep(
    model: RefusalModel, directions: dict[str, RefusalDirection], prompt_sets: dict[str, list[str]],
    alphas: list[float], max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 16,
) -> "pd.DataFrame":
    """Refusal rate under +α·r̂ at each direction's layer, for every α, direction and prompt set.

    The paper's Fig. 22 (over-refusal vs. safety as the addition strength grows, on
    harmful vs. harmless-but-sensitive prompts). The paper's text is the only reference
    (not in the official code); α is used as given (the authors cast it to int). α = 0 is
    the unsteered model and is generated once per set.
    """
    import pandas as pd

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
