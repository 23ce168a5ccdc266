"""What notebook 04 and the report show about independent directions: the Fig. 6 traces, the
refusal rate with each direction ablated (Fig. 7), top-k ablation by span and sequentially
(Fig. 8) and pairwise interference. The CLI's ``traces`` and ``eval`` call the same pieces."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.eval.judges import Judge
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.repind.traces import interference, trace_pair


def figure6_traces(model: RefusalModel, prompts: list[str], dim: RefusalDirection, other: dict[str, RefusalDirection],
                   batch_size: int = 16) -> dict[str, dict]:
    """For each direction in ``other`` (e.g. RDO⊥, RepInd-1): its trace with DIM ablated and
    DIM's trace with it ablated (the two panels of one row of Fig. 6), as ``CosineTrace.to_dict()``."""
    out = {}
    dev = lambda d: d.vector.float().to(model.device)
    for name, d in other.items():
        out[f"{name} (DIM ablated)"] = trace_pair(model, prompts, dev(d), dev(dim), (name, "DIM"), batch_size).to_dict()
        out[f"DIM ({name} ablated)"] = trace_pair(model, prompts, dev(dim), dev(d), ("DIM", name), batch_size).to_dict()
    return out


def ablation_rates(model: RefusalModel, prompts: list[str], directions: dict[str, RefusalDirection],
                   max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 16) -> dict[str, float]:
    """Refusal rate with each direction ablated (one generation run per direction)."""
    return {name: evaluate_intervention(model, prompts, d, "ablate", max_new_tokens=max_new_tokens, judge=judge,
                                        batch_size=batch_size).rate for name, d in directions.items()}


def topk_rates(model: RefusalModel, prompts: list[str], directions: list[RefusalDirection], max_new_tokens: int = 32,
               judge: Judge | None = None, batch_size: int = 16,
               single: dict[int, float] | None = None) -> dict[str, dict[int, float]]:
    """Refusal rate with the first k directions ablated together, k = 1 … K, by span projection
    and sequentially (k = 1 is the same for both; pass it as ``single`` if already known)."""
    def rate(k: int, sequential: bool = False) -> float:
        return evaluate_intervention(model, prompts, directions[:k], "ablate", max_new_tokens=max_new_tokens,
                                     judge=judge, batch_size=batch_size, sequential=sequential).rate

    first = single[1] if single and 1 in single else rate(1)
    curves = {"span projection": {1: first}, "sequential (authors)": {1: first}}
    for k in range(2, len(directions) + 1):
        for name, sequential in (("span projection", False), ("sequential (authors)", True)):
            curves[name][k] = rate(k, sequential)
    return curves


def interference_matrix(model: RefusalModel, prompts: list[str], directions: dict[str, RefusalDirection],
                        batch_size: int = 16) -> tuple[list[str], Float[Tensor, "k k"]]:
    """Peak |Δcos| of every direction (row) with every other one (column) ablated."""
    return interference(model, prompts, {n: d.vector.float().to(model.device) for n, d in directions.items()},
                        batch_size)
