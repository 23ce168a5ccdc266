"""Timing that survives a noisy machine: interleaved runs and median ratios with their spread.

Timing A three times and then B three times compares two different moments of a machine
whose speed drifts (other jobs, thermal limits, page cache). Here every round runs each
contender once and a ratio is computed *per round*; the report is the median of those
ratios with their range. The order rotates from round to round (A B C, B C A, C A B, …),
so no contender always runs first after a pause or right after a heavy neighbour.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, warmup: bool = True) -> dict[str, list]:
    """Seconds per round for each contender, the order rotating each round (one untimed warm-up each first)."""
    if warmup:
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def ratio(times: dict[str, list[float]], num: str, den: str) -> str:
    """``median ratio num/den (min–max over rounds)`` of paired rounds, as text."""
    r = [a / b for a, b in zip(times[num], times[den], strict=True)]
    return f"{statistics.median(r):.3f}x (rounds {min(r):.3f}–{max(r):.3f}, n={len(r)})"


def median(xs: list[float]) -> float:
    return statistics.median(xs)
