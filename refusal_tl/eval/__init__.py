"""Evaluation: judges, completions under interventions, sweeps, selection scores, sampled directions,
the capability proxy and lm-eval. The metrics themselves (refusal score, KL, the substring judge) live
one floor down, in :mod:`refusal_tl.steer.metrics`, where the forwards that compute them are.
"""

from refusal_tl.eval.judges import JUDGES, Judge, StrongRejectJudge, SubstringJudge

__all__ = ["JUDGES", "Judge", "StrongRejectJudge", "SubstringJudge"]
