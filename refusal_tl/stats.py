"""95 % intervals on every rate the project reports (docs/algorithms.md §7).

- :func:`wilson`: the Wilson score interval of a proportion k/n (refusal rates, ASR, the rate of
  one sampled cone direction). It stays inside [0, 1] and is honest at k = 0 or k = n, where the
  normal approximation collapses to a point.
- :func:`bootstrap`: a percentile bootstrap over prompts of any statistic of a score matrix whose
  last axis is the prompt (best-of-N curves, the mean over cone samples).
- :func:`paired_difference`: the bootstrap interval of rate(a) − rate(b) on the *same* prompts,
  resampling prompts jointly; :func:`compare` turns it into the sentence the report prints
  ("below", "above" or "within noise").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Scores = Sequence[float | int] | np.ndarray  # 0/1 judgements or scores in [0, 1], one per prompt

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
N_BOOT = 2000


def wilson(k: int | float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes out of n (k may be a sum of 0/1 scores)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def count_ci(scores: Scores) -> tuple[int, int, float, float]:
    """k refusals out of n 0/1 judgements, with the Wilson interval of k/n: ``(k, n, lo, hi)``."""
    k, n = round(float(sum(scores))), len(scores)
    return (k, n, *wilson(k, n))


def rate_ci(scores: Scores) -> tuple[float, float]:
    """Wilson interval of the mean of 0/1 scores; a bootstrap of the mean for continuous scores
    (StrongREJECT's ASR in [0, 1])."""
    s = np.asarray(scores, dtype=float)
    if np.all((s == 0) | (s == 1)):
        return wilson(float(s.sum()), len(s))
    return bootstrap(s, lambda x: x.mean(-1))


def bootstrap(scores: Scores, stat: Callable[[np.ndarray], np.ndarray], n_boot: int = N_BOOT, seed: int = 0,
              level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat`` over ``n_boot`` resamples of the prompts (the last axis of
    ``scores``). ``stat`` maps an array ``[..., prompts]`` to a scalar; it is called once per
    resample, seeded, so the interval is reproducible."""
    s = np.asarray(scores, dtype=float)
    n = s.shape[-1]
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    values = np.array([float(stat(s[..., i])) for i in idx])
    a = (1 - level) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return (float(lo), float(hi))


def paired_difference(a: Scores, b: Scores, n_boot: int = N_BOOT,
                      seed: int = 0) -> dict:
    """rate(a) − rate(b) on the same prompts, with the bootstrap interval over prompts."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs scores on the same prompts, got {a.shape} and {b.shape}")
    diff = a - b
    lo, hi = bootstrap(diff, lambda x: x.mean(-1), n_boot, seed)
    return {"difference": float(diff.mean()), "ci95": [lo, hi]}


def compare(name_a: str, a: Scores, name_b: str, b: Scores, what: str = "refusal rate") -> str:
    """One sentence: "A's refusal rate is below B's (−12.5 points, 95 % CI [−25.0, −4.2])", or
    "… within noise" when the interval of the difference contains 0."""
    d = paired_difference(a, b)
    lo, hi = d["ci95"]
    verdict = "below" if hi < 0 else "above" if lo > 0 else "within noise of"
    return (f"{name_a}'s {what} is {verdict} {name_b}'s ({100 * d['difference']:+.1f} points, "
            f"95 % CI [{100 * lo:+.1f}, {100 * hi:+.1f}], {len(a)} prompts)")


def best_of_n_ci(success: np.ndarray, n: int, seed: int = 0, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Bootstrap interval (over prompts) of best-of-``n`` success, ``success[sample][prompt]`` in [0, 1],
    averaged over the disjoint blocks of ``n`` samples as :meth:`SampleEval.best_of_n` does."""
    s = np.asarray(success, dtype=float)
    blocks = s.shape[0] // n

    def stat(x):
        return x[:blocks * n].reshape(blocks, n, -1).max(1).mean()
    return bootstrap(s, stat, n_boot, seed)


def fmt_rate(rate: float, ci: Sequence[float] | None = None) -> str:
    """"32.8 % [22.1, 45.6]" (percent)."""
    if ci is None:
        return f"{100 * rate:.1f} %"
    return f"{100 * rate:.1f} % [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"
