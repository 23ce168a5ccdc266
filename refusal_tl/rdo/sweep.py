"""The retain-weight sweep (paper Fig. 15): one RDO direction per λ_ret."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from refusal_tl.eval.evaluate import evaluate_intervention, first_token_kl
from refusal_tl.model import RefusalModel
from refusal_tl.rdo.config import RdoRunConfig
from refusal_tl.rdo.run import run_rdo


def retain_sweep(model: RefusalModel, run_dir: str | Path, cfg: RdoRunConfig, lambdas: list[float],
                 harmful: list[str], harmless: list[str], max_new_tokens: int = 32, batch_size: int = 16):
    """Paper Fig. 15: train one RDO direction per retain weight λ_ret and measure the
    trade-off (refusal rate on harmful prompts under ablation vs. first-token KL on harmless).

    Each run lives in ``run_dir/rdo-ret{λ}`` (resumable). Not in the official code; the
    paper's text is the reference. Returns one row per λ.
    """
    rows = []
    for lam in lambdas:
        weights = {**cfg.rdo.weights, "ret": float(lam)}
        sub = replace(cfg, rdo=replace(cfg.rdo, weights=weights))
        res = run_rdo(sub, run_dir, model, name=f"rdo-ret{lam:g}")
        rate = evaluate_intervention(model, harmful, res.direction, "ablate", max_new_tokens=max_new_tokens,
                                     batch_size=batch_size).rate
        kl = first_token_kl(model, harmless, res.direction, "ablate", batch_size=batch_size)
        rows.append(dict(lambda_ret=float(lam), refusal_ablated=rate, kl=kl, cosine_to_dim=res.cosine_to_dim))
    return pd.DataFrame(rows)

