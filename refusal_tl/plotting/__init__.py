"""Plotly figures for every result; functions return ``go.Figure`` and never show them."""

from refusal_tl.plotting.common import COLORS, answer_length, completions_table, refusal_rates, save_figure
from refusal_tl.plotting.cone import best_of_n, cone_3d, cone_boxplots, monotonic_sweep
from refusal_tl.plotting.dim import kl_scores, refusal_score_by_layer, selection_landscape
from refusal_tl.plotting.gcg import aux_effect, gcg_losses, gcg_traces, suffix_table
from refusal_tl.plotting.rdo import (
    ablation_weight_sweep,
    addition_sweep,
    method_comparison,
    rdo_loss_curves,
    retain_pareto,
)
from refusal_tl.plotting.repind import cosine_traces, direction_bars, interference_heatmap, topk_ablation
from refusal_tl.plotting.search import kernel_figure, pareto_figure

__all__ = ["COLORS", "ablation_weight_sweep", "addition_sweep", "answer_length", "aux_effect", "best_of_n",
           "completions_table", "cone_3d", "cone_boxplots", "cosine_traces", "direction_bars", "gcg_losses",
           "gcg_traces", "interference_heatmap", "kernel_figure", "kl_scores", "method_comparison", "monotonic_sweep",
           "pareto_figure", "rdo_loss_curves", "refusal_rates", "refusal_score_by_layer", "retain_pareto",
           "save_figure", "selection_landscape", "suffix_table", "topk_ablation"]
