"""Plotly figures for every result; functions return ``go.Figure`` and never show them.

``save_figure`` writes interactive HTML (plotly.js from its CDN, so files stay small)
and, optionally, a PNG when kaleido and a Chrome/Chromium are available.
"""

from __future__ import annotations

import logging
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from refusal_tl.io import atomic_write

log = logging.getLogger(__name__)
COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692"]


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
            marker=dict(size=8, opacity=[1.0 if i > 0 else 0.25 for i in g.induce]),
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


def refusal_rates(rates: dict[str, float], title: str = "Refusal rate (substring judge)") -> go.Figure:
    """Bar chart of refusal rates (0–1) per condition."""
    fig = go.Figure(go.Bar(x=list(rates), y=[100 * r for r in rates.values()],
                           text=[f"{100 * r:.0f}%" for r in rates.values()], textposition="outside",
                           marker_color=COLORS[: len(rates)]))
    fig.update_layout(title=title, yaxis_title="% refused", yaxis_range=[0, 110], height=420, width=700)
    return fig


def completions_table(prompts: list[str], columns: dict[str, list[str]], max_chars: int = 220) -> go.Figure:
    """Side-by-side completions per condition for a handful of prompts."""
    cut = lambda s: s if len(s) <= max_chars else s[: max_chars - 1] + "…"
    header = ["prompt", *columns]
    cells = [[cut(p) for p in prompts], *[[cut(c) for c in col] for col in columns.values()]]
    fig = go.Figure(go.Table(header=dict(values=header, align="left"),
                             cells=dict(values=cells, align="left", height=60)))
    fig.update_layout(height=140 + 95 * len(prompts), width=1200, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def rdo_loss_curves(history: list[dict], selected: int | None = None) -> go.Figure:
    """RDO training: each loss component and their unweighted sum per optimizer step.

    Vertical dotted lines mark learning-rate reductions (plateau schedule); the star is the
    selected step.
    """
    steps = [h["step"] for h in history]
    names = {"train_loss": "total (unweighted)", "abl": "L_abl (answer harmful, ablated)",
             "add": "L_add (refuse harmless, +αr̂)", "ret": "L_ret (KL on harmless, ablated)"}
    fig = make_subplots(rows=1, cols=4, subplot_titles=list(names.values()))
    for col, (key, name) in enumerate(names.items(), start=1):
        fig.add_trace(go.Scatter(x=steps, y=[h[key] for h in history], mode="lines+markers", name=name,
                                 line=dict(color=COLORS[col - 1]), marker=dict(size=4)), row=1, col=col)
        if selected is not None:
            fig.add_trace(go.Scatter(x=[history[selected]["step"]], y=[history[selected][key]], mode="markers",
                                     marker=dict(symbol="star", size=14, color="gold", line=dict(width=1)),
                                     name="selected", showlegend=col == 1), row=1, col=col)
    for prev, h in zip(history, history[1:]):
        if h["lr"] < prev["lr"]:
            fig.add_vline(x=h["step"], line=dict(color="gray", dash="dot"))
    fig.update_xaxes(title_text="optimizer step")
    fig.update_layout(title="RDO training losses (dotted: learning rate ÷10)", height=380, width=1300)
    return fig


def method_comparison(table) -> go.Figure:
    """DIM vs RDO (or any directions) from :func:`refusal_tl.evaluate.compare_directions`.

    Three panels: jailbreak on harmful prompts under ablation and subtraction (paper
    Fig. 2, refusal rate, lower = stronger direction), induced refusal on harmless prompts
    under addition (Fig. 10, higher = stronger), and first-token KL on harmless prompts under
    ablation (side effects, lower = cleaner). Dotted lines: the unsteered model.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "Jailbreak: refusal on harmful ↓ (Fig. 2)", "Induced refusal on harmless ↑ (Fig. 10)",
        "First-token KL on harmless, ablated ↓"))
    panels = [(1, {"harmful/ablate": "ablation", "harmful/subtract": "subtraction"}, 100),
              (2, {"harmless/add": "addition"}, 100), (3, {"harmless/ablate KL": "ablation"}, 1)]
    for k, (method, g) in enumerate(table.groupby("method", sort=False)):
        values = dict(zip(g.condition, g.value))
        for col, conds, scale in panels:
            ys = [scale * values[c] for c in conds]
            fig.add_trace(go.Bar(x=list(conds.values()), y=ys, name=method, legendgroup=method, showlegend=col == 1,
                                 marker_color=COLORS[k % len(COLORS)],
                                 text=[f"{y:.0f}%" if scale == 100 else f"{y:.3f}" for y in ys],
                                 textposition="outside"), row=1, col=col)
    first = table[table.method == table.method.iloc[0]].set_index("condition").value
    fig.add_hline(y=100 * first["harmful/none"], line=dict(color="gray", dash="dot"), row=1, col=1,
                  annotation_text="no intervention")
    fig.add_hline(y=100 * first["harmless/none"], line=dict(color="gray", dash="dot"), row=1, col=2,
                  annotation_text="no intervention")
    fig.update_yaxes(title_text="% refused", range=[0, 110], row=1, col=1)
    fig.update_yaxes(range=[0, 110], row=1, col=2)
    fig.update_layout(barmode="group", title="DIM vs RDO on held-out prompts (substring judge)", height=430, width=1250)
    return fig


def addition_sweep(table) -> go.Figure:
    """Paper Fig. 22: refusal rate vs. addition strength α, per direction and prompt set.

    Solid lines: harmful prompts (refusing is right); dashed: harmless-but-sensitive ones
    (refusing is over-refusal). A better direction separates the two over a wider α range.
    """
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for k, (method, g) in enumerate(table.groupby("method", sort=False)):
        for j, (name, h) in enumerate(g.groupby("prompts", sort=False)):
            fig.add_trace(go.Scatter(x=h.alpha, y=100 * h.rate, mode="lines+markers", name=f"{method}, {name}",
                                     line=dict(color=COLORS[k % len(COLORS)], dash=dashes[j % len(dashes)])))
    fig.update_layout(title="Over-refusal vs. safety under activation addition (Fig. 22)",
                      xaxis_title="addition strength α", yaxis_title="% refused", yaxis_range=[0, 105],
                      height=430, width=800)
    return fig


def retain_pareto(table, dim_point: tuple[float, float] | None = None) -> go.Figure:
    """Paper Fig. 15: first-token KL vs. refusal rate under ablation, one point per λ_ret
    (from :func:`refusal_tl.rdo_pipeline.retain_sweep`); lower-left is better."""
    fig = go.Figure(go.Scatter(x=table.kl, y=100 * table.refusal_ablated, mode="lines+markers+text",
                               text=[f"λ_ret={x:g}" for x in table.lambda_ret], textposition="top right",
                               name="RDO", marker=dict(size=9, color=COLORS[1])))
    if dim_point is not None:
        fig.add_trace(go.Scatter(x=[dim_point[0]], y=[100 * dim_point[1]], mode="markers+text", text=["DIM"],
                                 textposition="top right", name="DIM", marker=dict(size=11, color=COLORS[0])))
    fig.update_layout(title="Retain weight trade-off (Fig. 15)", xaxis_title="first-token KL on harmless (ablated)",
                      yaxis_title="% harmful refused (ablated)", xaxis_type="log", height=430, width=700)
    return fig


def save_figure(fig: go.Figure, stem: str | Path, png: bool = False) -> Path:
    """Write ``stem.html`` (and ``stem.png`` if asked and possible) atomically."""
    stem = Path(stem)
    html = fig.to_html(include_plotlyjs="cdn", full_html=True)
    path = atomic_write(stem.with_suffix(".html"), lambda tmp: tmp.write_text(html))
    if png:
        try:
            atomic_write(stem.with_suffix(".png"), lambda tmp: fig.write_image(str(tmp), format="png"))
        except Exception as err:  # kaleido needs Chrome; PNG is a nicety
            log.warning("PNG export skipped (%s); the HTML figure is at %s", type(err).__name__, path)
    return path
