"""RDO figures: loss curves, DIM vs RDO (Fig. 2/10), the α sweep (Fig. 22), the λ_ret front (Fig. 15)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from refusal_tl.plotting.common import COLORS, interval_bars


def rdo_loss_curves(history: list[dict], selected: int | None = None,
                    title: str = "RDO training losses") -> go.Figure:
    """RDO training: each loss component and their unweighted sum per optimizer step.

    Vertical dotted lines mark learning-rate reductions (plateau schedule); the star is the
    selected step.
    """
    steps = [h["step"] for h in history]
    names = {"train_loss": "total (unweighted)", "abl": "L_abl (answer harmful, ablated)",
             "add": "L_add (refuse harmless, +αr̂)", "ret": "L_ret (KL on harmless, ablated)"}
    if history and "ind" in history[0]:
        names["ind"] = "L_ind (representational independence)"
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=list(names.values()))
    for col, (key, name) in enumerate(names.items(), start=1):
        fig.add_trace(go.Scatter(x=steps, y=[h[key] for h in history], mode="lines+markers", name=name,
                                 line=dict(color=COLORS[(col - 1) % len(COLORS)]), marker=dict(size=4)), row=1, col=col)
        if selected is not None:
            fig.add_trace(go.Scatter(x=[history[selected]["step"]], y=[history[selected][key]], mode="markers",
                                     marker=dict(symbol="star", size=14, color="gold", line=dict(width=1)),
                                     name="selected", showlegend=col == 1), row=1, col=col)
    for prev, h in zip(history, history[1:]):
        if h["lr"] < prev["lr"]:
            fig.add_vline(x=h["step"], line=dict(color="gray", dash="dot"))
    fig.update_xaxes(title_text="optimizer step")
    fig.update_layout(title=f"{title} (dotted: learning rate ÷10)", height=380, width=325 * len(names))
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
        values, rows = dict(zip(g.condition, g.value)), g.set_index("condition")
        for col, conds, scale in panels:
            ys = [scale * values[c] for c in conds]
            err = None
            if "lo" in rows and scale == 100:  # 95 % Wilson intervals of the rates
                err = interval_bars(ys, [(rows.lo[c], rows.hi[c]) for c in conds])
            fig.add_trace(go.Bar(x=list(conds.values()), y=ys, error_y=err, name=method, legendgroup=method,
                                 showlegend=col == 1,
                                 marker_color=COLORS[k % len(COLORS)],
                                 text=[f"{y:.0f}%" if scale == 100 else f"{y:.3f}" for y in ys],
                                 textposition="inside" if err else "outside"), row=1, col=col)
    first = table[table.method == table.method.iloc[0]].set_index("condition").value
    fig.add_hline(y=100 * first["harmful/none"], line=dict(color="gray", dash="dot"), row=1, col=1,
                  annotation_text="no intervention")
    fig.add_hline(y=100 * first["harmless/none"], line=dict(color="gray", dash="dot"), row=1, col=2,
                  annotation_text="no intervention")
    fig.update_yaxes(title_text="% refused", range=[0, 110], row=1, col=1)
    fig.update_yaxes(range=[0, 110], row=1, col=2)
    fig.update_layout(barmode="group", height=430, width=1250,
                      title="DIM vs RDO on held-out prompts (substring judge; bars: 95 % Wilson intervals)")
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
    (from :func:`refusal_tl.rdo.sweep.retain_sweep`); lower-left is better."""
    fig = go.Figure(go.Scatter(x=table.kl, y=100 * table.refusal_ablated, mode="lines+markers+text",
                               text=[f"λ_ret={x:g}" for x in table.lambda_ret], textposition="top right",
                               name="RDO", marker=dict(size=9, color=COLORS[1])))
    if dim_point is not None:
        fig.add_trace(go.Scatter(x=[dim_point[0]], y=[100 * dim_point[1]], mode="markers+text", text=["DIM"],
                                 textposition="top right", name="DIM", marker=dict(size=11, color=COLORS[0])))
    fig.update_layout(title="Retain weight trade-off (Fig. 15)", xaxis_title="first-token KL on harmless (ablated)",
                      yaxis_title="% harmful refused (ablated)", xaxis_type="log", height=430, width=700)
    return fig


def ablation_weight_sweep(table) -> go.Figure:
    """Paper Fig. 14: λ_abl (λ_add = 1 − λ_abl) → attack success rate under ablation and subtraction,
    from :func:`refusal_tl.rdo.sweep.ablation_weight_sweep`. With several seeds: mean ± SEM over seeds;
    with one: the ASR with its 95 % Wilson interval."""
    fig = go.Figure()
    for k, (kind, g) in enumerate(table.groupby("intervention", sort=False)):
        per = g.groupby("lambda_abl")
        mean = per.asr.mean()
        if per.seed.nunique().max() > 1:
            sem = per.asr.std(ddof=1) / per.asr.count() ** 0.5
            err = dict(type="data", array=100 * sem.values, visible=True)
            what = "mean ± SEM over seeds"
        else:
            err = dict(type="data", symmetric=False, array=100 * (per.hi.mean() - mean).values,
                       arrayminus=100 * (mean - per.lo.mean()).values)
            what = "95 % Wilson intervals"
        fig.add_trace(go.Scatter(x=mean.index, y=100 * mean.values, error_y=err, mode="lines+markers",
                                 name={"ablate": "ablation", "subtract": "subtraction"}.get(kind, kind),
                                 line=dict(color=COLORS[k % len(COLORS)])))
    fig.update_layout(title=f"Loss weights: λ_add = 1 − λ_abl (Fig. 14; {what})",
                      xaxis_title="λ_abl  (λ_add = 1 − λ_abl)", yaxis_title="attack success rate, % (1 − refusal)",
                      yaxis_range=[-5, 105], height=430, width=720)
    return fig


def asr_panels(panels: list[dict]) -> go.Figure:
    """Paper Figs. 11–13: attack success rate per method (no intervention included) on each evaluation set,
    one panel per set, 95 % Wilson intervals as error bars (from :func:`refusal_tl.pipeline.trust.asr_sets`)."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[
        p["title"] + ("" if p["title"] in p["stands_in_for"] else f"<br><sub>for {', '.join(p['stands_in_for'])}</sub>")
        for p in panels])
    for col, p in enumerate(panels, start=1):
        ys = [100 * r["asr"] for r in p["rows"]]
        fig.add_trace(go.Bar(x=[r["method"] for r in p["rows"]], y=ys, showlegend=False,
                             marker_color=[COLORS[i % len(COLORS)] for i in range(len(ys))],
                             error_y=interval_bars(ys, [(r["lo"], r["hi"]) for r in p["rows"]])),
                      row=1, col=col)
        fig.update_yaxes(range=[0, 105], row=1, col=col)
    fig.update_yaxes(title_text="attack success rate, % (1 − refusal; ablated)", row=1, col=1)
    fig.update_layout(title="Attack success under ablation (Figs. 11–13; bars: 95 % Wilson intervals)", height=460,
                      width=max(520, 420 * len(panels)))
    return fig
