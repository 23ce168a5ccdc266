"""Cone figures: sample boxplots (Figs. 3/4/17/18), best-of-N (Figs. 5/19), the α sweep
(Fig. 20) and a 3-D view of a 3-dimensional cone in its own basis (the paper's Fig. 1, made real)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from refusal_tl.plotting.common import COLORS


def cone_boxplots(samples: dict[int, list[float]], basis: dict[int, list[float]] | None = None,
                  references: dict[str, float] | None = None, baseline: float | None = None,
                  title: str = "Refusal rate of cone samples under ablation (harmful prompts)") -> go.Figure:
    """One box per cone dimension (refusal rate of each sampled direction, %), its basis vectors
    as dots, reference directions (DIM, RDO) as dashed lines and the unsteered baseline dotted."""
    fig = go.Figure()
    for n, rates in samples.items():
        fig.add_trace(go.Box(y=[100 * r for r in rates], name=f"dim {n}", boxpoints="all", jitter=0.4,
                             pointpos=0, marker=dict(size=3, color=COLORS[0]), line=dict(color=COLORS[0]),
                             showlegend=False))
        if basis and n in basis:
            fig.add_trace(go.Scatter(x=[f"dim {n}"] * len(basis[n]), y=[100 * r for r in basis[n]], mode="markers",
                                     marker=dict(size=11, color=COLORS[1], symbol="diamond", line=dict(width=1)),
                                     name="basis vectors", showlegend=n == min(basis)))
    places = ("top left", "bottom left", "top right", "bottom right")  # labels of equal rates must not overlap
    for i, (name, rate) in enumerate((references or {}).items()):
        fig.add_hline(y=100 * rate, line=dict(color=COLORS[2 + i], dash="dash"), annotation_text=name,
                      annotation_position=places[i % len(places)])
    if baseline is not None:
        fig.add_hline(y=100 * baseline, line=dict(color="gray", dash="dot"), annotation_text="no intervention")
    fig.update_layout(title=title, yaxis_title="% refused (substring judge)", yaxis_range=[-5, 105],
                      xaxis_title="cone dimension", height=450, width=750)
    return fig


def best_of_n(curves: dict[str, dict[int, float]],
              title: str = "Best-of-N: share of harmful prompts answered by at least one of N samples",
              bands: dict[str, dict[int, tuple[float, float]]] | None = None) -> go.Figure:
    """Number of samples N (log scale) → best-of-N success rate, one line per cone (or method); ``bands``
    (per curve, N → (lo, hi)) are drawn as 95 % intervals around their curves."""
    fig = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        band = (bands or {}).get(name)
        if band:
            xs = list(band)
            fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[100 * band[n][1] for n in xs] + [100 * band[n][0]
                                                                                          for n in xs[::-1]],
                                     fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=list(curve), y=[100 * v for v in curve.values()], mode="lines+markers",
                                 name=name, legendgroup=name, line=dict(color=color)))
    note = " (bands: 95 % bootstrap intervals over prompts)" if bands else ""
    fig.update_layout(title=title + note, xaxis=dict(type="log", title="N samples"),
                      yaxis_title="% answered (best of N)", yaxis_range=[0, 105], height=420, width=750)
    return fig


def monotonic_sweep(table, title: str = "Refusal score under +α·r̂ (harmful prompts)") -> go.Figure:
    """α → mean refusal score, mean ± std over each method's directions (paper Fig. 20), from
    :func:`refusal_tl.eval.sweeps.monotonic_sweep`."""
    fig = go.Figure()
    for i, (name, part) in enumerate(table.groupby("method", sort=False)):
        stats = part.groupby("alpha")["score"].agg(["mean", "std"]).fillna(0.0).reset_index()
        color = COLORS[i % len(COLORS)]
        x = stats["alpha"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=(stats["mean"] + stats["std"]).tolist()
                                 + (stats["mean"] - stats["std"]).tolist()[::-1], fill="toself",
                                 line=dict(width=0), fillcolor=color, opacity=0.2, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=stats["mean"], mode="lines+markers", name=name, line=dict(color=color)))
    fig.update_layout(title=title, xaxis_title="α (addition strength)", yaxis_title="refusal score (log-odds)",
                      height=420, width=750)
    return fig


def cone_3d(weights: np.ndarray, rates: np.ndarray, threshold: float, references: dict[str, np.ndarray] | None = None,
            title: str = "A 3-dimensional refusal cone in its own basis") -> go.Figure:
    """Sampled directions of a 3-dimensional cone as points s on the unit sphere's positive
    orthant (r = sᵀB), coloured by the refusal rate under ablation; ``threshold``: a sample
    with rate ≤ threshold *bypasses* (circle), else cross. The basis vectors are the axes;
    ``references`` (DIM, RDO) are drawn as their unit projections onto the basis span."""
    fig = go.Figure()
    u, v = np.meshgrid(np.linspace(0, np.pi / 2, 30), np.linspace(0, np.pi / 2, 30))
    fig.add_trace(go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=0.15,
                             showscale=False, colorscale=[[0, "gray"], [1, "gray"]], hoverinfo="skip"))
    for i, axis in enumerate(np.eye(3)):
        fig.add_trace(go.Scatter3d(x=[0, axis[0]], y=[0, axis[1]], z=[0, axis[2]], mode="lines+text",
                                   text=["", f"b{i + 1}"], line=dict(color="black", width=5), showlegend=False))
    bypass = rates <= threshold
    for mask, name, symbol in ((bypass, "bypasses refusal", "circle"), (~bypass, "does not", "x")):
        if mask.any():
            fig.add_trace(go.Scatter3d(
                x=weights[mask, 0], y=weights[mask, 1], z=weights[mask, 2], mode="markers", name=name,
                marker=dict(size=4, symbol=symbol, color=100 * rates[mask], colorscale="RdYlGn_r", cmin=0, cmax=100,
                            colorbar=dict(title="% refused") if name == "bypasses refusal" else None),
                text=[f"{100 * r:.0f}% refused" for r in rates[mask]]))
    for i, (name, s) in enumerate((references or {}).items()):
        s = s / max(np.linalg.norm(s), 1e-9)
        fig.add_trace(go.Scatter3d(x=[0, s[0]], y=[0, s[1]], z=[0, s[2]], mode="lines+markers", name=name,
                                   line=dict(color=COLORS[2 + i], width=6, dash="dash"), marker=dict(size=3)))
    fig.update_layout(title=title, height=600, width=750,
                      scene=dict(xaxis_title="b1", yaxis_title="b2", zaxis_title="b3", aspectmode="cube"))
    return fig
