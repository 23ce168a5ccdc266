"""``RUN/report.html``: one self-contained page (Plotly inline, works offline) with what a
reproduction computed — per stage a summary table and the stage's figures — plus the exact
config, the model's weights sha and the timings.

:func:`stage_sections` turns the results of :func:`refusal_tl.reproduce.reproduce` into
sections; :func:`render` writes any list of sections (figures and tables) as one HTML file.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from refusal_tl import plotting
from refusal_tl.io import write_text
from refusal_tl.plotting import suite as figs
from refusal_tl.plotting.gcg import cos_drop


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)


def render(sections: list[Section], title: str, meta: dict) -> str:
    """The page: plotly.js once, then every section's text, tables and figures; ``meta``
    (config, model sha, timings) as a JSON block at the end."""
    from plotly.offline import get_plotlyjs

    body = []
    for i, s in enumerate(sections):
        body.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        body += [t.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, classes="table")
                 for t in s.tables]
        body += [f'<div class="figure" data-name="{html.escape(name)}">'
                 + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{i}-{k}") + "</div>"
                 for k, (name, fig) in enumerate(s.figures.items())]
        body.append("</section>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1>{''.join(body)}"
            f"<section><h2>Configuration</h2><pre id='meta'>{html.escape(json.dumps(meta, indent=2, default=str))}"
            "</pre></section></body></html>")


CSS = ("body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
       "table.table{border-collapse:collapse;margin:1em 0}table.table td,table.table th{padding:.25em .6em;"
       "border-bottom:1px solid #ddd;text-align:right}pre{background:#f6f6f6;padding:1em;overflow:auto}")


def write_report(path: str | Path, sections: list[Section], title: str, meta: dict) -> Path:
    """Render and write atomically."""
    return write_text(path, render(sections, title, meta))


def benchmark_section(b: dict) -> Section:
    """lm-eval's scores without and with each direction ablated, or why they are missing."""
    from refusal_tl.eval.benchmarks import BenchmarkScores

    title = "Capability benchmarks with lm-eval (paper Table 4)"
    if "unavailable" in b:
        return Section(title, text=f"Not run: {b['unavailable']} The offline capability proxy is in the results "
                                   "table above.")
    table = BenchmarkScores(**b).table()
    wide = table.pivot(index=["task", "metric"], columns="condition", values="score").reset_index()
    return Section(title, text=f"The directions ablated in the weights (equal to hook ablation), chat template, "
                               f"{'all' if b['limit'] is None else b['limit']} documents per task.",
                   tables=[wide])


def stage_sections(results: dict, evals: dict | None = None) -> list[Section]:
    """Sections for the stages present in ``results`` (stage name -> result, as reproduce keeps them)
    and the evaluations in ``evals`` (:func:`refusal_tl.eval.suite.evaluate_run`)."""
    out, evals = [], evals or {}
    if "dim" in results:
        r = results["dim"]
        d = r.direction
        out.append(Section("DIM: difference-in-means direction and its selection (Arditi et al.; paper Fig. 16)",
                           tables=[pd.DataFrame([dict(layer=d.layer, position=d.pos, norm=d.norm,
                                                      **{k: d.extra.get(k) for k in ("bypass", "induce", "kl")})])],
                           figures=r.figures()))
    if "rdo" in results:
        r = results["rdo"]
        out.append(Section("RDO: refusal direction optimisation (paper Algorithm 1)",
                           tables=[pd.DataFrame([dict(step=r.direction.extra.get("step"), cosine_to_dim=r.cosine_to_dim,
                                                      train_loss=r.direction.extra.get("train_loss"))])],
                           figures=r.figures()))
    if "methods" in evals:
        m = evals["methods"]
        fig = figs.method_figures(m) | (figs.sweep_figures(evals["sweeps"]) if "sweeps" in evals else {})
        if "retain" in evals:
            fig["retain_pareto_fig15"] = figs.retain_figure(evals["retain"], m)
        out.append(Section("Results on held-out prompts (the paper's Table 5, Fig. 2, Fig. 10, Fig. 15, Fig. 22)",
                           text=f"{len(m['prompts']['harmful'])} harmful and {len(m['prompts']['harmless'])} harmless "
                                f"held-out prompts, greedy {m['max_new_tokens']} tokens, substring judge. The "
                                f"capability columns are an offline proxy on {m['n_capability']} harmless prompts "
                                "(CE of the model's own answers under ablation), not the paper's benchmarks.",
                           tables=[figs.table5(m)], figures=fig))
    if "benchmarks" in evals:
        out.append(benchmark_section(evals["benchmarks"]))
    if "cone" in results:
        r = results["cone"]
        rows = [dict(dims=n, step=s.step + 1, **{k: s.chosen.get(k) for k in
                                                ("sample_bypass", "sample_induce", "sample_kl_max")})
                for n, s in r.selections.items()]
        fig = r.figures()
        if "cone_ablate" in evals:
            a = evals["cone_ablate"]
            refs = {k: results[s].direction for k, s in (("DIM", "dim"), ("RDO", "rdo")) if s in results}
            fig |= figs.cone_figures(a, evals.get("cone_induce"), evals.get("temperatures"), evals.get("cone_sweep"),
                                     r.cones, refs)
            for c in a["cones"]:
                rows[[x["dims"] for x in rows].index(c["dims"])] |= {
                    "samples_evaluated": len(c["rates"]),
                    "share_halving_refusal": sum(x <= a["baseline"] / 2 for x in c["rates"]) / len(c["rates"])}
        out.append(Section("Refusal cones (paper Algorithm 2, Sec. 5)", tables=[pd.DataFrame(rows)], figures=fig))
    if "repind" in results:
        rep = results["repind"]["repind"]
        rows = [dict(direction=f"RepInd-{d.extra['k']}", candidate=d.extra["candidate"] + 1, step=d.extra["step"],
                     val_refusal_score=d.extra["val_refusal_score"],
                     cosines_to_earlier=", ".join(f"{c:.3f}" for c in d.extra["cosines_to_V"]))
                for d in rep.directions]
        fig, tables = rep.figures(), [pd.DataFrame(rows)]
        if "repind" in evals:
            e = evals["repind"]
            fig |= figs.repind_figures(e)
            tables.append(pd.DataFrame([dict(direction=k, refusal_ablated=v) for k, v in e["rates"].items()]
                                       + [dict(direction="no intervention", refusal_ablated=e["baseline"])]))
        out.append(Section("Representational independence (paper Sec. 6): RDO⊥ and RepInd", tables=tables,
                           figures=fig))
    if "gcg" in results:
        runs = {f"w_aux = {rows[0]['aux_weight']:g}" if rows else name: rows
                for name, rows in results["gcg"].items()}
        table = pd.DataFrame([dict(run=name, prompt=r["prompt"][:80], suffix=r["suffix"],
                                   cos_drop=cos_drop(r),
                                   refused=r["refused"], completion=r["completion"][:80])
                              for name, rows in runs.items() for r in rows])
        out.append(Section("GCG suffixes against RepInd-1 (paper Sec. 6, Fig. 9)", tables=[table],
                           figures={"gcg_losses": plotting.gcg_losses(runs),
                                    "gcg_traces_fig9": plotting.gcg_traces(runs, next(iter(runs.values()))[0]["layer"]),
                                    "gcg_aux_effect": plotting.aux_effect(runs),
                                    "gcg_suffixes": plotting.suffix_table(next(iter(runs.values())))}))
    return out


def stage_configs(results: dict) -> dict:
    """Each stage's exact config, for the report's configuration block."""
    out = {}
    for stage, r in results.items():
        obj = r["repind"] if stage == "repind" else r
        if hasattr(obj, "config"):
            out[stage] = obj.config.to_dict()
    return out
