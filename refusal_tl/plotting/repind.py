"""Representational-independence figures: cosine traces (Figs. 6/21), per-direction refusal
(Fig. 7), top-k ablation (Fig. 8) and a heat-map of pairwise interference."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from refusal_tl.plotting.common import COLORS


def _band(fig, x, mean, std, color, name, dash, row, col, legend):
    upper = [m + s for m, s in zip(mean, std)]
    lower = [m - s for m, s in zip(mean, std)]
    fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", fillcolor=color, opacity=0.15,
                             line=dict(width=0), hoverinfo="skip", showlegend=False), row=row, col=col)
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", line=dict(color=color, dash=dash), name=name,
                             showlegend=legend, legendgroup=name), row=row, col=col)


def cosine_traces(traces: dict[str, dict], cols: int = 2,
                  title: str = "Cosine with the residual stream at the last prompt token") -> go.Figure:
    """One panel per trace (``CosineTrace.to_dict()``): solid clean cos(x, λ), dashed cos(x̃, λ)
    with the other direction ablated, ±1 std bands (the paper's Fig. 6 as a 2×2 grid)."""
    names = list(traces)
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[
        f"{n} (peak |Δcos| {t['peak_delta']:.3f})" for n, t in traces.items()])
    for i, t in enumerate(traces.values()):
        row, col = i // cols + 1, i % cols + 1
        x = list(t["layers"])
        _band(fig, x, t["clean_mean"], t["clean_std"], COLORS[0], "clean", "solid", row, col, i == 0)
        _band(fig, x, t["ablated_mean"], t["ablated_std"], COLORS[1], "other direction ablated", "dash", row, col,
              i == 0)
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="cosine similarity")
    fig.update_layout(title=title, height=360 * rows, width=1100)
    return fig


def direction_bars(rates: dict[str, float], baseline: float | None = None,
                   title: str = "Refusal rate with each direction ablated (harmful prompts)") -> go.Figure:
    """One bar per direction (Fig. 7), sorted by refusal rate; the unsteered baseline dotted."""
    items = sorted(rates.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[k for k, _ in items], y=[100 * v for _, v in items],
                           text=[f"{100 * v:.0f}%" for _, v in items], textposition="outside",
                           marker_color=[COLORS[0] if not k.startswith("RepInd") else COLORS[2] for k, _ in items]))
    if baseline is not None:
        fig.add_hline(y=100 * baseline, line=dict(color="gray", dash="dot"), annotation_text="no intervention")
    fig.update_layout(title=title, yaxis_title="% refused (substring judge)", yaxis_range=[0, 110], height=420,
                      width=750)
    return fig


def topk_ablation(curves: dict[str, dict[int, float]], references: dict[str, float] | None = None,
                  baseline: float | None = None,
                  title: str = "Ablating the top-k RepInd directions together (harmful prompts)") -> go.Figure:
    """k → refusal rate, one line per way of ablating (span projection, sequential), DIM dashed (Fig. 8)."""
    fig = go.Figure()
    for i, (name, pts) in enumerate(curves.items()):
        ks = sorted(pts)
        fig.add_trace(go.Scatter(x=ks, y=[100 * pts[k] for k in ks], mode="lines+markers", name=name,
                                 line=dict(color=COLORS[i])))
    for i, (name, rate) in enumerate((references or {}).items()):
        fig.add_hline(y=100 * rate, line=dict(color=COLORS[3 + i], dash="dash"), annotation_text=name)
    if baseline is not None:
        fig.add_hline(y=100 * baseline, line=dict(color="gray", dash="dot"), annotation_text="no intervention")
    fig.update_layout(title=title, xaxis_title="k (directions ablated)", xaxis_dtick=1,
                      yaxis_title="% refused (substring judge)", yaxis_range=[-5, 105], height=420, width=750)
    return fig


def interference_heatmap(names: list[str], matrix, title: str = "Interference: peak |Δcos| of the row's direction "
                         "when the column's direction is ablated") -> go.Figure:
    """Pairwise peak |Δcos| between all found directions (0: representationally independent)."""
    z = [[float(v) for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, colorscale="Viridis", zmin=0,
                               text=[[f"{v:.3f}" for v in row] for row in z], texttemplate="%{text}",
                               colorbar=dict(title="|Δcos|")))
    fig.update_layout(title=title, xaxis_title="ablated", yaxis_title="traced", yaxis_autorange="reversed",
                      height=520, width=640)
    return fig
