"""Evaluation: metrics and judges (pure), completions under interventions, sweeps, selection scores.

Only the pure modules are imported here (``steer`` imports the metrics); import
:mod:`refusal_tl.eval.evaluate`, :mod:`~refusal_tl.eval.sweeps` and
:mod:`~refusal_tl.eval.scorer` by their full path, or use the top-level package.
"""

from refusal_tl.eval.judges import JUDGES, Judge, StrongRejectJudge, SubstringJudge
from refusal_tl.eval.metrics import is_refusal, kl_last, refusal_rate, refusal_score

__all__ = ["JUDGES", "Judge", "StrongRejectJudge", "SubstringJudge", "is_refusal", "kl_last", "refusal_rate",
           "refusal_score"]
