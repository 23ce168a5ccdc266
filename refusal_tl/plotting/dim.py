"""DIM figures: the selection landscape and the paper's Fig. 16."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from refusal_tl.plotting.common import COLORS


def selection_landscape(selection) -> go.Figure:
    """Bypass, induce and KL score per source layer and EOI position (cf. paper Fig. 16).

    Candidates that are not admissible are drawn transparent (when the induce filter had to
    be relaxed, admissible means passing the others); the red line marks the KL threshold
    0.1 and the star the selected direction.
    """
    t = selection.table
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Bypass score (harmful val, ablated) ↓", "Induce score (harmless val, +v) ≥ 0", "KL on harmless val (log)"))
    for k, (pos, g) in enumerate(t.groupby("pos")):
        opacity = [1.0 if a else 0.25 for a in g.admissible]
        for col, metric in enumerate(("bypass", "induce", "kl"), start=1):
            fig.add_trace(go.Scatter(
                x=g.layer, y=g[metric], mode="lines+markers", name=f"pos {pos}", legendgroup=str(pos),
                showlegend=col == 1, line=dict(color=COLORS[k % len(COLORS)], width=1),
                marker=dict(opacity=opacity, size=7), customdata=g.reason,
                hovertemplate=f"pos {pos}, layer %{{x}}<br>{metric} %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
            ), row=1, col=col)
    best = selection.best
    for col, metric in enumerate(("bypass", "induce", "kl"), start=1):
        fig.add_trace(go.Scatter(x=[best.layer], y=[best[metric]], mode="markers", name="selected",
                                 marker=dict(symbol="star", size=16, color="gold", line=dict(width=1)),
                                 showlegend=col == 1), row=1, col=col)
    fig.add_hline(y=0.1, line=dict(color="red", dash="dash"), row=1, col=3)
    fig.add_hline(y=0.0, line=dict(color="gray", dash="dot"), row=1, col=2)
    fig.add_hline(y=selection.baseline_bypass, line=dict(color="gray", dash="dot"), row=1, col=1,
                  annotation_text="no intervention")
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_xaxes(title_text="source layer")
    relaxed = f" (relaxed: {', '.join(selection.relaxed)})" if selection.relaxed else ""
    fig.update_layout(title=f"DIM direction selection: transparent = filtered out{relaxed}", height=420, width=1200)
    return fig


def kl_scores(selection) -> go.Figure:
    """Paper Fig. 16: KL score of each DIM candidate per source layer and EOI position.

    Log y-axis; candidates whose induce score is ≤ 0 are transparent; red line at KL = 0.1.
    """
    t = selection.table.dropna(subset=["kl"])
    fig = go.Figure()
    for k, (pos, g) in enumerate(t.groupby("pos")):
        fig.add_trace(go.Scatter(
            x=g.layer, y=g.kl, mode="lines+markers", name=f"pos {pos}",
            line=dict(color=COLORS[k % len(COLORS)], width=1),
            marker=dict(size=8, opacity=[1.0 if i > 0 else 0.25 for i in g.induce]),  # NaN (pruned): transparent
            customdata=g.induce, hovertemplate="layer %{x}<br>KL %{y:.4f}<br>induce %{customdata:.2f}<extra></extra>",
        ))
    fig.add_hline(y=0.1, line=dict(color="red", dash="dash"), annotation_text="KL = 0.1")
    fig.update_yaxes(type="log", title_text="KL score (harmless val, direction ablated)")
    fig.update_layout(title="DIM candidates: KL score by source layer (transparent: induce score ≤ 0)",
                      xaxis_title="source layer", height=450, width=850)
    return fig


def refusal_score_by_layer(selection) -> go.Figure:
    """Refusal score per source layer at the selected EOI position: ablating the candidate
    on harmful prompts, adding it on harmless prompts, against the unmodified baselines."""
    g = selection.table[selection.table.pos == selection.pos]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=g.layer, y=g.bypass, mode="lines+markers", name="harmful, direction ablated"))
    fig.add_trace(go.Scatter(x=g.layer, y=g.induce, mode="lines+markers", name="harmless, direction added"))
    fig.add_hline(y=selection.baseline_bypass, line=dict(dash="dash", color=COLORS[0]),
                  annotation_text="harmful, baseline")
    fig.add_hline(y=selection.baseline_induce, line=dict(dash="dash", color=COLORS[1]),
                  annotation_text="harmless, baseline")
    fig.add_vline(x=selection.layer, line=dict(color="gold"), annotation_text="selected")
    fig.update_layout(title=f"Refusal score by layer (EOI position {selection.pos})",
                      xaxis_title="source layer", yaxis_title="refusal score  log P(refuse) − log P(comply)",
                      height=420, width=800)
    return fig
