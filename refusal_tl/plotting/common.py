"""Shared plotting pieces: colours, saving, refusal-rate bars and completion tables.

Every figure function in :mod:`refusal_tl.plotting` returns a ``go.Figure`` and never shows it.

``save_figure`` writes interactive HTML (plotly.js from its CDN, so files stay small)
and, optionally, a PNG when kaleido and a Chrome/Chromium are available.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import plotly.graph_objects as go

from refusal_tl.io import atomic_write
from refusal_tl.stats import wilson

log = logging.getLogger(__name__)
COLORS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692"]


def interval_bars(ys: list[float], bounds: list[tuple[float, float]]) -> dict:
    """Plotly ``error_y`` for values ``ys`` in % and their intervals ``bounds`` as fractions (lo, hi)."""
    return dict(type="data", symmetric=False, color="#444", array=[100 * hi - y for (_, hi), y in zip(bounds, ys)],
                arrayminus=[y - 100 * lo for (lo, _), y in zip(bounds, ys)])


def refusal_rates(rates: dict[str, float], title: str = "Refusal rate (substring judge)",
                  n: dict[str, int] | None = None) -> go.Figure:
    """Bar chart of refusal rates (0–1) per condition; with ``n`` (prompts per condition) the 95 %
    Wilson interval of each rate as error bars."""
    ys = [100 * r for r in rates.values()]
    err = None
    if n:
        err = interval_bars(ys, [wilson(round(r * n[k]), n[k]) for k, r in rates.items()])
    fig = go.Figure(go.Bar(x=list(rates), y=ys, error_y=err, text=[f"{y:.0f}%" for y in ys],
                           textposition="inside" if n else "outside", marker_color=COLORS[: len(rates)]))
    ci = ", bars: 95 % Wilson intervals" if n else ""
    fig.update_layout(title=title + ci, yaxis_title="% refused", yaxis_range=[0, 110], height=420, width=700)
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


def save_figure(fig: go.Figure, stem: str | Path, png: bool = False) -> Path:
    """Write ``stem.html`` (and ``stem.png`` if asked and possible) atomically.

    ``REFUSAL_TL_PNG=0`` in the environment skips every PNG (the test suite sets it: each
    PNG starts a headless Chromium, about 3.5 s).
    """
    stem = Path(stem)
    html = fig.to_html(include_plotlyjs="cdn", full_html=True)
    path = atomic_write(stem.with_suffix(".html"), lambda tmp: tmp.write_text(html))
    if png and os.environ.get("REFUSAL_TL_PNG", "1") != "0":
        try:
            atomic_write(stem.with_suffix(".png"), lambda tmp: fig.write_image(str(tmp), format="png"))
        except Exception as err:  # kaleido needs Chrome; PNG is a nicety
            log.warning("PNG export skipped (%s); the HTML figure is at %s", type(err).__name__, path)
    return path


def answer_length(table, title: str = "Refusal rate against answer length (held-out harmful prompts)") -> go.Figure:
    """New tokens (log scale) → refusal rate with its 95 % interval as a band, one line per condition
    (:func:`refusal_tl.eval.length.length_curve`); hover gives the mean answer length and the share of
    answers still running at the cut."""
    fig = go.Figure()
    for i, (name, g) in enumerate(table.groupby("condition", sort=False)):
        color = COLORS[i % len(COLORS)]
        x = list(g.tokens)
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[100 * v for v in g.hi] + [100 * v for v in g.lo][::-1],
                                 fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=[100 * v for v in g.rate], mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color), customdata=list(zip(g.mean_length, 100 * g.cut, g.n)),
                                 hovertemplate="%{x} tokens: %{y:.1f} % refused<br>mean answer %{customdata[0]:.0f} "
                                               "tokens, %{customdata[1]:.0f} % still running at the cut, "
                                               "%{customdata[2]} prompts<extra></extra>"))
    fig.update_layout(title=title + " (bands: 95 % Wilson intervals)", xaxis=dict(type="log", title="new tokens",
                      tickvals=sorted(set(table.tokens))), yaxis_title="% refused (substring judge)",
                      yaxis_range=[0, 105], height=430, width=760)
    return fig
