"""RDO's loss-weight sweeps: one direction per setting, trained beside the main run (resumable).

- :func:`retain_sweep`, paper Fig. 15: one direction per λ_ret, refusal under ablation against
  first-token KL on harmless prompts.
- :func:`ablation_weight_sweep`, paper Fig. 14: λ_add = 1 − λ_abl for λ_abl from 0 to 1, attack
  success (1 − refusal rate) on harmful prompts under ablation and under subtraction, optionally over
  several seeds (mean ± SEM, as the paper plots), each rate with its Wilson interval.

Neither is in the official code; the paper's text is the reference (docs/algorithms.md §4).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from refusal_tl.eval.evaluate import evaluate_intervention, first_token_kl
from refusal_tl.model import RefusalModel
from refusal_tl.rdo.config import RdoRunConfig
from refusal_tl.rdo.run import run_rdo


def _train(model: RefusalModel, run_dir, cfg: RdoRunConfig, name: str, seed: int | None = None, **weights):
    rdo = replace(cfg.rdo, weights={**cfg.rdo.weights, **{k: float(v) for k, v in weights.items()}})
    if seed is not None:
        rdo = replace(rdo, seed=seed)
    return run_rdo(replace(cfg, rdo=rdo), run_dir, model, name=name)


def retain_sweep(model: RefusalModel, run_dir: str | Path, cfg: RdoRunConfig, lambdas: list[float],
                 harmful: list[str], harmless: list[str], max_new_tokens: int = 32, batch_size: int = 16):
    """Paper Fig. 15: train one RDO direction per retain weight λ_ret and measure the
    trade-off (refusal rate on harmful prompts under ablation vs. first-token KL on harmless).

    Each run lives in ``run_dir/rdo-ret{λ}`` (resumable). Returns one row per λ.
    """
    rows = []
    for lam in lambdas:
        res = _train(model, run_dir, cfg, f"rdo-ret{lam:g}", ret=lam)
        rate = evaluate_intervention(model, harmful, res.direction, "ablate", max_new_tokens=max_new_tokens,
                                     batch_size=batch_size).rate
        kl = first_token_kl(model, harmless, res.direction, "ablate", batch_size=batch_size)
        rows.append(dict(lambda_ret=float(lam), refusal_ablated=rate, kl=kl, cosine_to_dim=res.cosine_to_dim))
    return pd.DataFrame(rows)


def ablation_weight_sweep(model: RefusalModel, run_dir: str | Path, cfg: RdoRunConfig, lambdas: list[float],
                          harmful: list[str], seeds: tuple[int, ...] = (42,), max_new_tokens: int = 32,
                          batch_size: int = 16) -> pd.DataFrame:
    """Paper Fig. 14: for each λ_abl (λ_add = 1 − λ_abl, λ_ret unchanged) and seed, train one RDO
    direction (``run_dir/rdo-abl{λ}-s{seed}``, resumable) and measure the attack success rate
    (1 − refusal rate) on ``harmful`` under ablation and under subtraction. One row per
    (λ_abl, seed, intervention) with the ASR's 95 % interval."""
    rows = []
    for lam in lambdas:
        for seed in seeds:
            res = _train(model, run_dir, cfg, f"rdo-abl{lam:g}-s{seed}", seed, abl=lam, add=1.0 - lam)
            for kind in ("ablate", "subtract"):
                ev = evaluate_intervention(model, harmful, res.direction, kind, max_new_tokens=max_new_tokens,
                                           batch_size=batch_size)
                lo, hi = ev.ci95
                rows.append(dict(lambda_abl=float(lam), lambda_add=round(1.0 - lam, 6), seed=seed,
                                 intervention=kind, asr=1 - ev.rate, lo=1 - hi, hi=1 - lo, n=len(harmful)))
    return pd.DataFrame(rows)
