"""GCG figures: loss curves, the Fig. 9 cosine traces (plain solid, suffixed dashed) and the
effect of the auxiliary weight, from the rows (:class:`refusal_tl.gcg.GcgRow`) of
:func:`refusal_tl.gcg.run_gcg`, one list per run (e.g. ``{"w_aux = 10": rows, "w_aux = 0": rows}``)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from refusal_tl.plotting.common import COLORS, completions_table


def gcg_losses(runs: dict[str, list], title: str = "GCG: loss of the kept suffix per step") -> go.Figure:
    """Per step: total loss (left) and cross-entropy of the target (right), one line per prompt
    and run (e.g. ``{"w_aux = 10": rows, "w_aux = 0": rows}``)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["L = CE + w_aux·(h·r̂)²", "CE of the target"])
    for i, (label, rows) in enumerate(runs.items()):
        for j, r in enumerate(rows):
            steps = list(range(1, len(r.losses) + 1))
            style = dict(color=COLORS[i % len(COLORS)], dash=["solid", "dot", "dash", "dashdot"][j % 4])
            for col, key in ((1, "losses"), (2, "ce")):
                fig.add_trace(go.Scatter(x=steps, y=getattr(r, key), mode="lines", line=style, legendgroup=label,
                                         name=f"{label}: prompt {j + 1}", showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="GCG step")
    fig.update_layout(title=title, height=400, width=1100)
    return fig


def gcg_traces(runs: dict[str, list], layer: int | None = None,
               title: str = "Fig. 9: cos(r̂, residual stream at the last token), plain (solid) vs suffixed (dashed)"
               ) -> go.Figure:
    """Layer → mean cosine over prompts, plain prompts solid and suffixed dashed, ±1 std bands;
    the auxiliary term's layer marked."""
    fig = go.Figure()
    first = next(iter(runs.values()))
    x = list(range(len(first[0].cos_plain)))

    def band(values, color, name, dash):
        arr = np.array(values)
        m, s = arr.mean(0), arr.std(0)
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(m + s) + list((m - s)[::-1]), fill="toself", fillcolor=color,
                                 opacity=0.12, line=dict(width=0), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=m, mode="lines", line=dict(color=color, dash=dash), name=name))

    band([r.cos_plain for r in first], "gray", "plain prompts", "solid")
    for i, (label, rows) in enumerate(runs.items()):
        band([r.cos_suffixed for r in rows], COLORS[i % len(COLORS)], f"suffixed ({label})", "dash")
    if layer is not None:
        fig.add_vline(x=layer, line=dict(color="gray", dash="dot"), annotation_text="aux layer")
    fig.update_layout(title=title, xaxis_title="layer", yaxis_title="cosine similarity", height=420, width=900)
    return fig


def aux_effect(runs: dict[str, list], baseline: float | None = None,
               title: str = "Effect of the auxiliary weight") -> go.Figure:
    """Per run: the relative drop of cos at the aux layer (left) and the share of suffixed
    prompts answered (right)."""
    labels = list(runs)
    drop, answered = [], []
    for rows in runs.values():
        d = [r.cos_drop for r in rows if r.cos_drop is not None]
        drop.append(100 * float(np.mean(d)) if d else 0.0)
        answered.append(100 * float(np.mean([not r.refused for r in rows])))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["mean drop of cos(r̂, h) at the aux layer (%)",
                                                        "suffixed prompts answered (%)"])
    fig.add_trace(go.Bar(x=labels, y=drop, marker_color=COLORS[0], showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=answered, marker_color=COLORS[2], showlegend=False), row=1, col=2)
    if baseline is not None:
        fig.add_hline(y=100 * baseline, line=dict(color="gray", dash="dot"), annotation_text="plain prompts",
                      row=1, col=2)
    fig.update_layout(title=title, height=400, width=900)
    return fig


def suffix_table(rows: list) -> go.Figure:
    """Each suffixed prompt with its target and the model's answer (notebook 05, the report)."""
    return completions_table([r.prompt + " " + r.suffix for r in rows], {
        "target (DIM ablated, 20 chars)": [r.target for r in rows],
        "answer to the suffixed prompt": [r.completion for r in rows],
        "refused?": ["yes" if r.refused else "no" for r in rows],
    })
