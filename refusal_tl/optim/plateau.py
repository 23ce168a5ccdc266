"""Reduce-on-plateau learning-rate schedule with stopping (docs/algorithms.md §5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class Plateau:
    """÷10 after ``patience`` steps without a new best (at most ``max_reductions`` times);
    the next plateau stops training.

    ``window`` > 1 compares the mean of the last ``window`` step losses instead of the
    step loss itself (the paper is ``window=1``): with few examples per step the step loss is
    mostly batch-to-batch noise, and a noisy "plateau" cuts the learning rate early.
    """

    patience: int = 5
    max_reductions: int = 2
    window: int = 1
    best: float = float("inf")
    bad_steps: int = 0
    reductions: int = 0
    recent: list[float] = field(default_factory=list)

    def step(self, loss: float) -> Literal["ok", "reduce", "stop"]:
        """Record one step's unweighted train loss; return 'ok', 'reduce' or 'stop'."""
        self.recent = (self.recent + [loss])[-self.window:]
        value = sum(self.recent) / len(self.recent)
        if value < self.best:
            self.best, self.bad_steps = value, 0
            return "ok"
        self.bad_steps += 1
        if self.bad_steps < self.patience:
            return "ok"
        self.bad_steps = 0
        if self.reductions >= self.max_reductions:
            return "stop"
        self.reductions += 1
        return "reduce"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["best"] = None if d["best"] == float("inf") else d["best"]  # JSON has no infinity
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plateau":
        return cls(**{**d, "best": float("inf") if d["best"] is None else d["best"]})
