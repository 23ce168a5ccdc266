"""Timing that survives a noisy machine: interleaved runs and median ratios with their spread.

Timing A three times and then B three times compares two different moments of a machine
whose speed drifts (other jobs, thermal limits, page cache). Here every round runs each
contender once and a ratio is computed *per round*; the report is the median of those
ratios with their range. The order rotates from round to round (A B C, B C A, C A B, …),
so no contender always runs first after a pause or right after a heavy neighbour.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


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


def ratio_stats(times: dict[str, list[float]], num: str, den: str) -> dict:
    """The per-round ratios num/den as ``{"median", "min", "max", "n"}``."""
    r = [a / b for a, b in zip(times[num], times[den], strict=True)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "n": len(r)}


class Results:
    """What one benchmark measured, printed as ``RESULT`` lines and written as JSON to
    ``benchmarks/results/NAME.json`` (with the machine, torch version, commit and date), from
    which ``benchmarks/render_performance.py`` renders docs/performance.md."""

    def __init__(self, name: str, title: str, setup: str = ""):
        self.name, self.title, self.setup, self.rows = name, title, setup, []

    def ratio(self, what: str, times: dict[str, list[float]], num: str, den: str, target: str | None = None,
              note: str = "") -> dict:
        """Record the median per-round ratio ``num/den`` (and each contender's median seconds);
        ``target`` such as ``">= 1.7"`` is checked against the median."""
        stats = ratio_stats(times, num, den)
        row = {"what": what, "ratio": f"{num} / {den}", **stats,
               "seconds": {k: statistics.median(v) for k, v in times.items() if k in (num, den)},
               "target": target, "met": _meets(stats["median"], target), "note": note}
        self.rows.append(row)
        met = "" if target is None else f" (target {target}: {'met' if row['met'] else 'NOT met'})"
        print(f"RESULT {what}: {num}/{den} {ratio(times, num, den)}{met}" + (f"; {note}" if note else ""))
        return row

    def write(self, directory: Path | None = None) -> Path:
        path = Path(directory or Path(__file__).parent / "results") / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmark": self.name, "title": self.title, "setup": self.setup, "date": time.strftime("%Y-%m-%d"),
               "commit": _commit(), "machine": machine(), "rows": self.rows}
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")
        return path


def _meets(value: float, target: str | None) -> bool | None:
    if target is None:
        return None
    op, bound = target.split()
    return value >= float(bound) if op == ">=" else value <= float(bound)


def machine() -> dict:
    """CPU model, cores, bf16 support and library versions of this machine."""
    import platform

    import torch

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
                 platform.processor())
    return {"cpu": model, "threads": torch.get_num_threads(), "avx512_bf16": " avx512_bf16" in flags,
            "amx": " amx_tile" in flags, "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
