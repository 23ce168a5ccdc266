"""DIM: difference-in-means candidates, Arditi's selection, the run (docs/algorithms.md §1–§3)."""

from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.extract import DimCandidates, EoiActivations, eoi_activations, filter_by_score, mean_diff
from refusal_tl.dim.run import DimResult, dim_path, load_dim, run_dim, val_sets
from refusal_tl.dim.select import Selection, SelectionConfig, select_direction

__all__ = ["DimCandidates", "DimConfig", "DimResult", "EoiActivations", "Selection", "SelectionConfig",
           "dim_path", "eoi_activations", "filter_by_score", "load_dim", "mean_diff", "run_dim", "select_direction",
           "val_sets"]
