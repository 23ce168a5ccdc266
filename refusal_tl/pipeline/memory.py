"""Peak memory of a block of work: the kernel's high-water mark on Linux, a sampling thread elsewhere."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil
import torch


class PeakMemory:
    """Peak resident memory (and CUDA memory) of this process while the block runs.

    On Linux the kernel's high-water mark is exact: it is reset on entry (``/proc/self/clear_refs``)
    and read on exit (``VmHWM``). Elsewhere a thread samples the resident size every ``interval``
    seconds (it can miss a short spike made while a C call holds the GIL).
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _rss(self) -> int:
        return psutil.Process(os.getpid()).memory_info().rss

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._kernel = _reset_high_water_mark()
        self.peak = self._rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss(), _high_water_mark() if self._kernel else 0)
        return False

    def summary(self) -> dict:
        out = {"peak_rss_gb": round(self.peak / 2**30, 3)}
        if torch.cuda.is_available():
            out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        return out


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _high_water_mark() -> int:
    """VmHWM of this process in bytes (Linux), 0 if unreadable."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return 0
