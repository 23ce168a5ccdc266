"""GCG suffixes with a direction-suppression term (paper §6, Fig. 9): tokens, loss, search, run."""

from refusal_tl.gcg.attack import Problem, SuffixLoss, make_problem
from refusal_tl.gcg.config import GcgConfig
from refusal_tl.gcg.run import GcgResult, GcgRow, dim_targets, run_gcg, run_gcg_pair
from refusal_tl.gcg.search import Attack, run_attack

__all__ = ["Attack", "GcgConfig", "GcgResult", "GcgRow", "Problem", "SuffixLoss", "dim_targets", "make_problem",
           "run_attack", "run_gcg", "run_gcg_pair"]
