"""DIM: difference-in-means candidates, Arditi's selection, the run (docs/algorithms.md §1–§3)."""

from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.extract import DimCandidates, EoiActivations, eoi_activations, filter_by_score, mean_diff
from refusal_tl.dim.run import DimResult, run_dim
from refusal_tl.dim.select import Selection, SelectionConfig, select_direction

__all__ = ["DimCandidates", "DimConfig", "DimResult", "EoiActivations", "Selection", "SelectionConfig",
           "eoi_activations", "filter_by_score", "mean_diff", "run_dim", "select_direction"]
