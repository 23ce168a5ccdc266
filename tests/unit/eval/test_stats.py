"""Intervals: Wilson against hand-computed cases, the bootstrap against a seeded reference."""

import numpy as np
import pytest

from refusal_tl.stats import best_of_n_ci, bootstrap, compare, fmt_rate, paired_difference, rate_ci, wilson


def test_wilson_hand_computed():
    # 5/10, z = 1.96: centre 0.5, half-width 1.96/1.38415 * sqrt(0.025 + 0.009604) = 0.26340
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    # 0/10: the interval still has width (the normal approximation would give [0, 0])
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    # 24 prompts at 50 %: about ±19 points, the spread the issue quotes
    lo, hi = wilson(12, 24)
    assert hi - lo == pytest.approx(0.372, abs=1e-3)


def test_rate_ci_is_wilson_for_binary_scores():
    assert rate_ci([1, 0, 1, 1, 0, 0, 0, 0, 0, 0]) == wilson(3, 10)


def test_bootstrap_matches_a_seeded_reference():
    x = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1], dtype=float)
    rng = np.random.default_rng(7)
    means = x[rng.integers(0, len(x), size=(500, len(x)))].mean(1)
    expected = tuple(np.quantile(means, [0.025, 0.975]))
    assert bootstrap(x, lambda s: s.mean(-1), n_boot=500, seed=7) == pytest.approx(expected)
    assert bootstrap(x, lambda s: s.mean(-1), seed=3) == bootstrap(x, lambda s: s.mean(-1), seed=3)


def test_paired_difference_and_the_sentence():
    a = np.array([0, 0, 0, 0, 1, 0, 0, 0] * 4, dtype=float)
    b = np.array([1, 1, 1, 0, 1, 1, 1, 1] * 4, dtype=float)
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(-0.75) and d["ci95"][1] < 0
    assert "is below" in compare("RDO", a, "DIM", b)
    same = paired_difference(a, a)
    assert same["ci95"] == [0.0, 0.0]
    assert "within noise" in compare("RDO", a, "DIM", a)
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference(a, b[:-1])


def test_best_of_n_interval_contains_the_estimate():
    rng = np.random.default_rng(0)
    success = (rng.random((16, 20)) < 0.3).astype(float)
    point = np.mean([success[b * 4:(b + 1) * 4].max(0).mean() for b in range(4)])
    lo, hi = best_of_n_ci(success, 4)
    assert lo <= point <= hi and hi - lo > 0


def test_fmt_rate():
    assert fmt_rate(0.328, (0.221, 0.456)) == "32.8 % [22, 46]"
