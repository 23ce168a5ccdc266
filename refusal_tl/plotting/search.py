"""The abliteration search's Pareto front (docs/algorithms.md §14)."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from refusal_tl.plotting.common import COLORS
from refusal_tl.stats import wilson

SYMBOLS = ["diamond", "square", "triangle-up", "cross", "x", "star-triangle-up"]


def _hover(t: dict) -> str:
    p = t.get("params", {})
    keys = ["source", "direction_index", "cone_vector", "repind_k", "biprojection", "norm_preserving"]
    shown = {k: (round(p[k], 2) if isinstance(p.get(k), float) else p.get(k)) for k in keys if k in p}
    kern = {k: round(v, 2) for k, v in p.items() if "." in k}
    return (f"trial {t['number']}<br>refusals {t['refusals']:g}, KL {t['kl']:.4f}<br>"
            + "<br>".join(f"{k}: {v}" for k, v in shown.items())
            + "<br>kernel: " + json.dumps(kern).replace(", \"mlp", "<br>\"mlp"))


def pareto_figure(result, chosen: dict | None = None, other: dict | None = None) -> go.Figure:
    """Refusals (out of N harmful validation prompts, with 95 % Wilson intervals) against first-token KL
    on harmless validation prompts: every trial, the front, the methods' own ablations and the
    chosen trial. ``other``: a second front ``{"name": ..., "points": [{"refusals", "kl"}, ...]}``
    (heretic's, from ``benchmarks/bench_heretic.py``)."""
    n = result.n_prompts["harmful"]
    pct = lambda k: 100 * k / n
    err = lambda pts: dict(type="data", symmetric=False,
                           array=[100 * wilson(round(p["refusals"]), n)[1] - pct(p["refusals"]) for p in pts],
                           arrayminus=[pct(p["refusals"]) - 100 * wilson(round(p["refusals"]), n)[0] for p in pts],
                           color="#bbb", thickness=1)
    fig = go.Figure()
    trials, front = result.trials, result.front()
    fig.add_trace(go.Scatter(x=[t["kl"] for t in trials], y=[pct(t["refusals"]) for t in trials], mode="markers",
                             name="trials", marker=dict(color="#9aa0a6", size=7),
                             hovertext=[_hover(t) for t in trials], hoverinfo="text"))
    fig.add_trace(go.Scatter(x=[t["kl"] for t in front], y=[pct(t["refusals"]) for t in front],
                             mode="lines+markers", name="refusal_tl front", line=dict(color=COLORS[0], shape="hv"),
                             marker=dict(size=9), error_y=err(front), hovertext=[_hover(t) for t in front],
                             hoverinfo="text"))
    if other:
        pts = sorted(other["points"], key=lambda p: (p["refusals"], p["kl"]))
        fig.add_trace(go.Scatter(x=[p["kl"] for p in pts], y=[pct(p["refusals"]) for p in pts], mode="lines+markers",
                                 name=other["name"], line=dict(color=COLORS[1], shape="hv", dash="dot"),
                                 error_y=err(pts)))
    for i, (name, d) in enumerate(result.defaults.items()):
        fig.add_trace(go.Scatter(x=[d["kl"]], y=[pct(d["refusals"])], mode="markers", name=f"{name} ablation",
                                 marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=13, color=COLORS[(i + 2) % 7],
                                             line=dict(color="black", width=1)),
                                 hovertext=f"{name}: standard ablation<br>refusals {d['refusals']:g}, "
                                           f"KL {d['kl']:.4f}", hoverinfo="text"))
    if chosen is not None:
        fig.add_trace(go.Scatter(x=[chosen["kl"]], y=[pct(chosen["refusals"])], mode="markers",
                                 name=f"chosen (trial {chosen['number']})", hovertext=_hover(chosen), hoverinfo="text",
                                 marker=dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1))))
    base = result.baseline
    fig.add_hline(y=pct(base["refusals"]), line_dash="dash", line_color="#666",
                  annotation_text=f"no edit: {base['refusals']:g}/{n}")
    fig.update_layout(title=f"Abliteration search: {len(trials)} trials, front of {len(front)} "
                            f"(refusals of {n} harmful, KL on {result.n_prompts['harmless']} harmless val prompts)",
                      xaxis_title="first-token KL on harmless prompts (log)", xaxis_type="log",
                      yaxis_title="% refused (95 % Wilson)", height=520, width=900)
    return fig


def kernel_figure(edit, title: str = "The chosen edit's weight per layer") -> go.Figure:
    """Per-layer weights of the attention (o_proj) and MLP (down_proj) edits of an
    :class:`~refusal_tl.steer.edit.Edit`."""
    layers = list(range(len(edit.attn)))
    fig = go.Figure([go.Scatter(x=layers, y=edit.attn.tolist(), mode="lines+markers", name="attention o_proj"),
                     go.Scatter(x=layers, y=edit.mlp.tolist(), mode="lines+markers", name="MLP down_proj")])
    sub = " (norm-preserving)" if edit.norm_preserving else ""
    fig.update_layout(title=title + sub + (f"; embedding {edit.embed:.2f}" if edit.embed else ""),
                      xaxis_title="layer", yaxis_title="weight w", height=360, width=800)
    return fig
