"""Evaluating many directions at once: cone samples (paper Figs. 3–5, 17–20).

Every (direction, prompt) pair is one batch row with its own intervention
(:mod:`refusal_tl.steer.multi`), so M sampled directions cost ⌈M·P / batch_size⌉ batched
generations instead of M generate loops. :class:`SampleEval` keeps the judgement of every
pair: the per-sample refusal rates (the boxplots), the per-prompt results (best-of-N) and
the completions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.evaluate import direction_hooks
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.geometry import RefusalCone
from refusal_tl.model import RefusalModel
from refusal_tl.stats import best_of_n_ci, bootstrap, rate_ci
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import AT_LAYER, Intervention
from refusal_tl.steer.multi import multi_generate

POOL = 512  # the official evaluation draws 512 samples (seed 42) and evaluates the first ones


@dataclass
class SampleEval:
    """Judgements ``scores[sample][prompt]`` of M directions on P prompts under one intervention."""

    model: str
    intervention: Intervention
    layer: int | None
    alpha: float | None
    max_new_tokens: int
    judge: str
    prompts: list[str]
    completions: list[list[str]]
    scores: Float[Tensor, "samples prompts"]
    seconds: float
    seed: int | None = None
    direction_indices: list[int] = field(default_factory=list)
    source: dict = field(default_factory=dict)
    kind: str = "refusal"  # the judge's: scores are refusals (1 = refused) or ASR (1 = fully jailbroken)

    @property
    def measure(self) -> str:
        """What a rate is: ``refusal_rate`` or ``asr``."""
        return "refusal_rate" if self.kind == "refusal" else "asr"

    @property
    def rates(self) -> Float[Tensor, " samples"]:
        """Refusal rate (or ASR, by the judge's kind) of each sampled direction."""
        return self.scores.mean(1)

    @property
    def rate(self) -> float:
        return float(self.scores.mean())

    def best_of_n(self, ns: list[int] | None = None) -> dict[int, float]:
        """Best-of-N success (paper Figs. 5/19): per prompt, the best of N samples (compliance,
        1 − score, for a refusal judge; the score itself for an ASR judge), averaged over prompts and
        over the disjoint blocks of N samples."""
        m = self.scores.shape[0]
        ns = ns or [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if n <= m]
        success = 1.0 - self.scores if self.kind == "refusal" else self.scores
        return {n: float(torch.stack([success[b * n:(b + 1) * n].max(0).values.mean()
                                      for b in range(m // n)]).mean()) for n in ns}

    @property
    def ci95(self) -> tuple[float, float]:
        """95 % interval of :attr:`rate`, the mean over samples and prompts: a bootstrap over prompts."""
        return bootstrap(self.scores.numpy(), lambda x: x.mean())

    def best_of_n_ci(self, ns: list[int] | None = None) -> dict[int, tuple[float, float]]:
        """95 % bootstrap interval (over prompts) of each :meth:`best_of_n` value."""
        success = 1.0 - self.scores if self.kind == "refusal" else self.scores
        return {n: best_of_n_ci(success.numpy(), n) for n in self.best_of_n(ns)}

    def to_dict(self) -> dict:
        idx = self.direction_indices or list(range(self.scores.shape[0]))
        return {
            "model": self.model, "intervention": self.intervention, "layer": self.layer, "alpha": self.alpha,
            "max_new_tokens": self.max_new_tokens, "judge": self.judge, "measure": self.measure, "seed": self.seed,
            "source": self.source, "seconds": self.seconds, "rate": self.rate, "ci95": list(self.ci95),
            "n_samples": len(idx), "n_prompts": len(self.prompts),
            "best_of_n": {str(k): v for k, v in self.best_of_n().items()},
            "best_of_n_ci95": {str(k): list(v) for k, v in self.best_of_n_ci().items()},
            "samples": [{"direction_index": i, self.measure: float(r), "ci95": list(rate_ci(row.tolist()))}
                        for i, r, row in zip(idx, self.rates, self.scores)],
            "prompts": [{"prompt": p, "scores": self.scores[:, j].tolist(),
                         "completions": [c[j] for c in self.completions]} for j, p in enumerate(self.prompts)],
        }


def evaluate_directions(model: RefusalModel, prompts: list[str], directions: Float[Tensor, "n d_model"],
                        intervention: Intervention = "ablate", layer: int | None = None, alpha: float | None = None,
                        max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 64,
                        desc: str | None = "generating") -> SampleEval:
    """Generate greedily under each direction's intervention (batched) and judge every completion.

    ``add``/``subtract`` use ``layer`` and α (default: each direction's norm).
    """
    judge = judge or SubstringJudge()
    if directions.dim() != 2 or directions.shape[1] != model.d_model:
        raise RefusalTLError(f"directions must be [n, d_model={model.d_model}] for {model.name}, "
                             f"got {tuple(directions.shape)}.")
    if intervention in AT_LAYER:
        if layer is None:
            raise RefusalTLError(f"--intervention {intervention} needs a layer (--layer L).")
        model.check_layer(layer)
    start = time.perf_counter()
    completions = multi_generate(model, prompts, directions.float(), intervention, layer, alpha, max_new_tokens,
                                 batch_size, desc=desc)
    scores = torch.tensor([judge(prompts, row) for row in completions], dtype=torch.float32)
    return SampleEval(model.name, intervention, layer, alpha, max_new_tokens, judge.name, prompts, completions,
                      scores, time.perf_counter() - start, kind=judge.kind)


def cone_samples(cone: RefusalCone, n: int, seed: int = 42) -> Float[Tensor, "n d_model"]:
    """The first ``n`` of the evaluation's pool of max(n, 512) seeded samples, scaled by the cone's α."""
    return cone.alpha * cone.sample(max(n, POOL), seed)[:n]


def evaluate_cone(model: RefusalModel, prompts: list[str], cone: RefusalCone, n: int = 64, seed: int = 42,
                  intervention: Intervention = "ablate", layer: int | None = None, alpha: float | None = None,
                  max_new_tokens: int = 32, judge: Judge | None = None, batch_size: int = 64) -> SampleEval:
    """:func:`evaluate_directions` on ``n`` seeded samples of ``cone`` (layer and α from the cone)."""
    if cone.basis.shape[1] != model.d_model:
        raise RefusalTLError(f"the cone has width {cone.basis.shape[1]} but {model.name} has d_model "
                             f"{model.d_model}: it was trained on another model ({cone.model}).")
    layer = cone.layer if layer is None else layer
    res = evaluate_directions(model, prompts, cone_samples(cone, n, seed), intervention, layer,
                              cone.alpha if alpha is None else alpha, max_new_tokens, judge, batch_size,
                              desc=f"{n} cone samples ({intervention})")
    res.seed, res.direction_indices, res.source = seed, list(range(n)), cone.metadata()
    return res


def evaluate_temperature(model: RefusalModel, prompts: list[str], direction, intervention: Intervention = "ablate",
                         temperature: float = 1.0, n: int = 64, seed: int = 42, max_new_tokens: int = 32,
                         judge: Judge | None = None, batch_size: int = 64) -> SampleEval:
    """One direction, ``n`` completions per prompt sampled at ``temperature`` (the paper's Fig. 5
    baseline to cone samples: RDO ablation with temperature sampling). ``scores[i, j]`` judges the
    i-th sampled completion of prompt j, so :meth:`SampleEval.best_of_n` is best-of-N over draws."""
    if temperature <= 0:
        raise RefusalTLError(f"temperature must be > 0 for sampling, got {temperature}.")
    judge = judge or SubstringJudge()
    hooks = direction_hooks(model, direction, intervention)
    start = time.perf_counter()
    rows = [p for _ in range(n) for p in prompts]
    texts = generate(model, rows, max_new_tokens, hooks, batch_size, desc=f"{n} draws at T={temperature:g}",
                     temperature=temperature, seed=seed)
    completions = [texts[i * len(prompts):(i + 1) * len(prompts)] for i in range(n)]
    scores = torch.tensor([judge(prompts, row) for row in completions], dtype=torch.float32)
    layer = getattr(direction, "layer", None)
    return SampleEval(model.name, intervention, layer, None, max_new_tokens, judge.name, prompts, completions,
                      scores, time.perf_counter() - start, seed, list(range(n)),
                      {"temperature": temperature, "method": getattr(direction, "method", None)}, judge.kind)
