"""Figures and tables from the data of :mod:`refusal_tl.pipeline.suite` (fresh or cached): the
notebooks and ``RUN/report.html`` draw the same figures from the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from refusal_tl.eval.samples import cone_samples
from refusal_tl.pipeline.suite import halving_share, method_long
from refusal_tl.plotting.common import answer_length, completions_table, refusal_rates
from refusal_tl.plotting.cone import best_of_n, cone_3d, cone_boxplots, monotonic_sweep
from refusal_tl.plotting.rdo import ablation_weight_sweep, addition_sweep, method_comparison, retain_pareto
from refusal_tl.plotting.repind import cosine_traces, direction_bars, interference_heatmap, topk_ablation
from refusal_tl.stats import best_of_n_ci, fmt_rate, wilson

# Table 5's column titles for the data's keys
COLUMNS = {"harmless/add": "harmless refused, added (induce)", "first-token KL": "first-token KL (harmless, ablated)",
           "capability CE": "capability proxy: CE (nats/token)"}


def table5(data: dict) -> pd.DataFrame:
    """The paper's Table 5 in this project's terms: one row per method, refusal rates under
    ablation / subtraction on harmful prompts (and ASR = 1 − rate), induced refusal under addition,
    each with its 95 % Wilson interval in brackets, first-token KL and the capability proxy
    (labelled as a proxy, not a benchmark)."""
    n = {k: len(v) for k, v in data["prompts"].items()}

    def pct(rate: float, which: str, flip: bool = False) -> str:
        size = n[which]
        lo, hi = wilson(round(rate * size), size)
        return fmt_rate(1 - rate, (1 - hi, 1 - lo)) if flip else fmt_rate(rate, (lo, hi))

    rows = []
    for r in data["rows"]:
        none = r["method"] == "no intervention"
        keys = ["harmful/none"] if none else ["harmful/ablate", "harmful/subtract"]
        row = {"method": r["method"],
               "harmful refused: ablated / subtracted": " / ".join(pct(r[k], "harmful") for k in keys),
               "ASR: ablated / subtracted": " / ".join(pct(r[k], "harmful", flip=True) for k in keys),
               COLUMNS["harmless/add"]: pct(r["harmless/none" if none else "harmless/add"], "harmless")}
        row[COLUMNS["first-token KL"]] = "" if none else f"{r['first-token KL']:.4f}"
        if "capability CE" in r:
            delta = "" if none else f" ({r['capability ΔCE']:+.3f})"
            row[COLUMNS["capability CE"] + " (Δ)"] = f"{r['capability CE']:.3f}{delta}"
        rows.append(row)
    return pd.DataFrame(rows)


def protocol_frame(data: dict) -> pd.DataFrame:
    """:func:`refusal_tl.pipeline.trust.protocol_table` as a table: refusals out of N (rate, interval), KL."""
    head = f"refusals, {data['protocol']} protocol ({data['max_new_tokens']} tokens, {data['judge']})"
    kl = "first-token KL (harmless, ablated)"
    count = lambda r: f"{r['refusals']}/{r['n']} ({fmt_rate(r['rate'], (r['lo'], r['hi']))})"
    return pd.DataFrame([{"method": r["method"], head: count(r),
                          kl: "" if r["method"] == "no intervention" else f"{r['kl']:.4f}"} for r in data["rows"]])


def length_figure(data: dict) -> go.Figure:
    """The answer-length curve (:func:`refusal_tl.eval.length.length_curve`'s rows, as cached)."""
    return answer_length(pd.DataFrame(data["rows"]))


def abl_sweep_figure(data: dict) -> go.Figure:
    """Fig. 14 from the cached rows of :func:`refusal_tl.rdo.sweep.ablation_weight_sweep`."""
    return ablation_weight_sweep(pd.DataFrame(data["rows"]))


def retain_figure(retain: dict, methods: dict | None = None) -> go.Figure:
    """Fig. 15 from :func:`refusal_tl.pipeline.suite.retain_tradeoff`, with DIM's point when ``methods`` has it."""
    dim = next((r for r in (methods or {}).get("rows", []) if r["method"] == "DIM"), None)
    point = (dim["first-token KL"], dim["harmful/ablate"]) if dim else None
    return retain_pareto(pd.DataFrame(retain["rows"]), point)


def method_figures(data: dict, show: int = 4) -> dict[str, go.Figure]:
    """DIM's refusal rates per condition (notebook 01), DIM vs RDO (Fig. 2 / 10) and completions
    of the first ``show`` prompts."""
    base, *methods = data["rows"]
    first = methods[0]
    rates = {k: base[k] for k in ("harmful/none", "harmless/none")} | {
        k: first[k] for k in ("harmful/ablate", "harmful/subtract", "harmless/add")}
    comp = data["completions"]
    harmful, harmless = (data["prompts"][k][:show] for k in ("harmful", "harmless"))
    name = first["method"]
    sizes = {k: len(data["prompts"][k.split("/")[0]]) for k in rates}
    figs = {f"refusal_rates_{name}": refusal_rates(rates, title=f"Refusal rate on held-out prompts, {name}",
                                                   n=sizes)}
    if len(methods) > 1:
        figs["methods_fig2_fig10"] = method_comparison(method_long(data))
    steered = [m for m in comp if m != "no intervention"]
    figs["completions_harmful"] = completions_table(harmful, {
        "no intervention": comp["no intervention"]["harmful/none"][:show]} | {
        f"{m} ablated": comp[m]["harmful/ablate"][:show] for m in steered})
    figs["completions_harmless"] = completions_table(harmless, {
        "no intervention": comp["no intervention"]["harmless/none"][:show]} | {
        f"{m} added (+α·r̂)": comp[m]["harmless/add"][:show] for m in steered})
    return figs


def curve(pairs: list) -> dict[int, float]:
    """``[[N, value], …]`` (how the data stores curves) as ``{N: value}``."""
    return {int(k): float(v) for k, v in pairs}


def cone_rate_boxplots(d: dict, title: str | None = None) -> go.Figure:
    """Fig. 3/17 (ablation, harmful prompts) or Fig. 18 (addition, harmless) from :func:`cone_rates` data."""
    title = title or ("Refusal rate of cone samples under ablation (harmful prompts)" if d["intervention"] == "ablate"
                      else f"Refusal rate of cone samples under {d['intervention']} (harmless prompts)")
    return cone_boxplots({c["dims"]: c["rates"] for c in d["cones"]},
                         {c["dims"]: c["basis"] for c in d["cones"] if "basis" in c}, d["references"], d["baseline"],
                         title=title)


def best_of_n_curves(ablate: dict, temperatures: dict | None = None) -> dict[str, dict[int, float]]:
    """Fig. 5/19's curves: best-of-N over each cone's samples, and over sampled completions."""
    curves = {f"cone dim {c['dims']}": curve(c["best_of_n"]) for c in ablate["cones"]}
    for c in (temperatures or {}).get("curves", []):
        curves[f"{temperatures['method'] or 'direction'}, T = {c['temperature']:g}"] = curve(c["best_of_n"])
    return curves


def best_of_n_bands(ablate: dict) -> dict[str, dict[int, tuple[float, float]]]:
    """95 % bootstrap intervals (over prompts) of each cone's best-of-N curve, from its cached scores."""
    bands = {}
    for c in ablate["cones"]:
        success = 1.0 - np.asarray(c["scores"], dtype=float)  # scores[sample][prompt]: 1 = refused
        bands[f"cone dim {c['dims']}"] = {n: best_of_n_ci(success, n) for n in curve(c["best_of_n"])}
    return bands


def cone_figures(ablate: dict, induce: dict | None = None, temperatures: dict | None = None,
                 sweep: dict | None = None, cones: dict | None = None,
                 references: dict | None = None) -> dict[str, go.Figure]:
    """Fig. 3/17 boxplots under ablation, Fig. 18 under addition, Fig. 5/19 best-of-N (cone samples
    and temperature sampling), Fig. 20 and, given the cones and a ≥ 3-dimensional one, the 3-D view."""
    figs = {"cone_ablation_fig3": cone_rate_boxplots(ablate)}
    if induce:
        figs["cone_induce_fig18"] = cone_rate_boxplots(induce)
    figs["best_of_n_fig5_fig19"] = best_of_n(best_of_n_curves(ablate, temperatures), bands=best_of_n_bands(ablate))
    if sweep:
        figs["monotonic_sweep_fig20"] = monotonic_sweep(pd.DataFrame(sweep["records"]))
    big = max(ablate["cones"], key=lambda c: c["dims"])
    if cones and big["dims"] >= 3 and big["dims"] in cones:
        figs["cone_3d"] = cone_3d_figure(cones[big["dims"]], np.array(big["rates"]), ablate["baseline"] / 2,
                                         ablate["n_samples"], ablate["seed"], references)
    return figs


def cone_3d_figure(cone, rates: np.ndarray, threshold: float, n: int, seed: int = 42,
                   references: dict | None = None) -> go.Figure:
    """The paper's Fig. 1 made real: the ``n`` evaluated samples of a cone in its first three basis
    coordinates, coloured by their refusal rate (at most ``threshold`` bypasses); ``references``
    (name -> direction) drawn as their unit projections onto the basis span."""
    coords = cone_samples(cone, n, seed) @ cone.basis.T
    coords = (coords / coords.norm(dim=-1, keepdim=True)).numpy()
    refs = {name: (cone.basis @ (d.vector.float() / d.vector.float().norm())).numpy()[:3]
            for name, d in (references or {}).items()}
    return cone_3d(coords[:, :3], rates, threshold, refs)


def sweep_figures(data: dict) -> dict[str, go.Figure]:
    """Fig. 22: refusal rate under addition with growing α, harmful vs sensitive prompts."""
    return {"addition_sweep_fig22": addition_sweep(pd.DataFrame(data["addition"]))}


def repind_figures(data: dict) -> dict[str, go.Figure]:
    """Fig. 6 (2 × 2 traces), Fig. 7 bars, Fig. 8 top-k with DIM and the interference heat-map."""
    inter = data["interference"]
    return {"traces_fig6": cosine_traces(data["traces"], title="Fig. 6: cosine traces, clean (solid) and with the "
                                                                 "other direction ablated (dashed)"),
            "direction_bars_fig7": direction_bars(data["rates"], data["baseline"]),
            "topk_fig8": topk_ablation({k: curve(v) for k, v in data["topk"].items()}, {"DIM": data["rates"]["DIM"]},
                                       data["baseline"]),
            "interference": interference_heatmap(inter["names"], np.array(inter["matrix"]))}


def stage_evaluation(stage: str, results: dict, evals: dict) -> tuple[list[pd.DataFrame], dict[str, go.Figure]]:
    """The tables and figures of ``stage``'s held-out evaluations in ``evals`` (none when it holds
    none): cone samples (Figs. 3, 5, 18–20, the 3-D view), Figs. 6–8 and the interference matrix,
    GCG's direction-term effect against the plain prompts."""
    if stage == "cone" and "cone_ablate" in evals:
        a = evals["cone_ablate"]
        refs = {k: results[s].direction for k, s in (("DIM", "dim"), ("RDO", "rdo")) if s in results}
        table = pd.DataFrame([dict(dims=c["dims"], samples_evaluated=len(c["rates"]),
                                   share_halving_refusal=halving_share(c["rates"], a["baseline"])) for c in a["cones"]])
        return [table], cone_figures(a, evals.get("cone_induce"), evals.get("temperatures"), evals.get("cone_sweep"),
                                     results["cone"].cones, refs)
    if stage == "repind" and "repind" in evals:
        e = evals["repind"]
        rates = pd.DataFrame([dict(direction=k, refusal_ablated=v) for k, v in e["rates"].items()]
                             + [dict(direction="no intervention", refusal_ablated=e["baseline"])])
        return [rates], repind_figures(e)
    if stage == "gcg" and "gcg" in evals:
        return [], results["gcg"].figures(evals["gcg"]["baseline"])
    return [], {}
