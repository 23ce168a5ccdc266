"""``RUN/report.html``: one self-contained page (Plotly inline, works offline) with what a
reproduction computed — per stage a summary table and the stage's figures — plus the exact
config, the model's weights sha and the timings.

:func:`stage_sections` turns the results of :func:`refusal_tl.pipeline.reproduce.reproduce` into
sections; :func:`render` writes any list of sections (figures and tables) as one HTML file.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from refusal_tl.abliterate.search import SearchResult
from refusal_tl.eval.agreement import agreement_table
from refusal_tl.eval.benchmarks import BenchmarkScores
from refusal_tl.io import write_text
from refusal_tl.pipeline import figures as figs
from refusal_tl.pipeline.trust import method_comparisons
from refusal_tl.plotting.rdo import asr_panels


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)


def render(sections: list[Section], title: str, meta: dict) -> str:
    """The page: plotly.js once, then every section's text, tables and figures; ``meta``
    (config, model sha, timings) as a JSON block at the end."""
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
    title = "Capability benchmarks with lm-eval (paper Table 4)"
    if "unavailable" in b:
        return Section(title, text=f"Not run: {b['unavailable']} The offline capability proxy is in the results "
                                   "table above.")
    table = BenchmarkScores(**b).table()
    wide = table.pivot(index=["task", "metric"], columns="condition", values="score").reset_index()
    return Section(title, text=f"The directions ablated in the weights (equal to hook ablation), chat template, "
                               f"{'all' if b['limit'] is None else b['limit']} documents per task.",
                   tables=[wide])


# The report's section titles, one per stage, in the paper's order
TITLES = {"dim": "DIM: difference-in-means direction and its selection (Arditi et al.; paper Fig. 16)",
          "rdo": "RDO: refusal direction optimisation (paper Algorithm 1)",
          "cone": "Refusal cones (paper Algorithm 2, Sec. 5)",
          "repind": "Representational independence (paper Sec. 6): RDO⊥ and RepInd",
          "gcg": "GCG suffixes against RepInd-1 (paper Sec. 6, Fig. 9)"}


def judges_section(j: dict) -> Section:
    """The judges against the hand-labelled completions, and against each other."""
    pairs = "; ".join(f"{p['a']} vs {p['b']}: κ {p['kappa']:.2f}" for p in j["pairwise"])
    return Section("Judges against hand labels",
                   text=f"{j['n']} completions of the bundled model labelled by reading ({j['refusals']} refusals; "
                        f"tests/data/labelled_completions.jsonl). Precision and recall are of the refusal class. "
                        f"Between judges: {pairs}.", tables=[agreement_table(j)])


def methods_section(m: dict, evals: dict) -> Section:
    """Table 5 with DIM vs RDO (Figs. 2, 10), the completions, Fig. 22 and, when run, Fig. 15."""
    fig = figs.method_figures(m) | (figs.sweep_figures(evals["sweeps"]) if "sweeps" in evals else {})
    if "lengths" in evals:
        fig["answer_length"] = figs.length_figure(evals["lengths"])
    if "asr_sets" in evals:
        fig["asr_fig11_13"] = asr_panels(evals["asr_sets"]["panels"])
    if "abl_sweep" in evals:
        fig["abl_add_sweep_fig14"] = figs.abl_sweep_figure(evals["abl_sweep"])
    if "retain" in evals:
        fig["retain_pareto_fig15"] = figs.retain_figure(evals["retain"], m)
    return Section("Results on held-out prompts (the paper's Table 5, Figs. 2, 10, 11–13, 14, 15, 22)",
                   text=f"{len(m['prompts']['harmful'])} harmful and {len(m['prompts']['harmless'])} harmless "
                        f"held-out prompts, greedy {m['max_new_tokens']} tokens, substring judge. The capability "
                        f"columns are an offline proxy on {m['n_capability']} harmless prompts (CE of the model's "
                        "own answers under ablation), not the paper's benchmarks. Brackets: 95 % Wilson intervals. "
                        + " ".join(s + "." for s in method_comparisons(m)),
                   tables=[figs.table5(m), *[figs.protocol_frame(v) for k, v in evals.items()
                                             if k.startswith("methods_")]], figures=fig)


def stage_sections(results: dict, evals: dict | None = None) -> list[Section]:
    """One section per stage in ``results`` (stage name -> result, as reproduce keeps them): its
    summary table and figures, with the figures of its held-out evaluations in ``evals``
    (:func:`refusal_tl.pipeline.stages.evaluate_run`); the results table after DIM and RDO."""
    out, evals = [], evals or {}
    for stage in (s for s in TITLES if s in results):
        tables, figures = figs.stage_evaluation(stage, results, evals)
        out.append(Section(TITLES[stage], tables=[results[stage].summary_table(), *tables],
                           figures=results[stage].figures() | figures))
        if stage == ("rdo" if "rdo" in results else "dim") and "methods" in evals:
            out.append(methods_section(evals["methods"], evals))
            if "benchmarks" in evals:
                out.append(benchmark_section(evals["benchmarks"]))
            if "judges" in evals:
                out.append(judges_section(evals["judges"]))
    return out


def search_section(run_dir: Path) -> list[Section]:
    """The abliteration search of ``run_dir`` (``refusal-tl search``), when it has one: its front
    (the methods' standard ablations marked) and the picked trial."""
    path = Path(run_dir) / "search" / "result.json"
    if not path.is_file():
        return []
    res = SearchResult.load(path)
    best, n = res.pick(), res.n_prompts["harmful"]
    rows = [{"trial": t["number"], "reference": t.get("reference", ""), "source": t["params"]["source"],
             "kernel": t["params"].get("kernel", ""), "biprojection": t["params"]["biprojection"],
             "norm-preserving": t["params"]["norm_preserving"], f"refusals /{n}": t["refusals"],
             "first-token KL": round(t["kl"], 4)} for t in res.front()]
    return [Section("Abliteration search (refusal-tl search; docs/algorithms.md §14)",
                    text=f"{len(res.trials)} trials of multi-objective TPE on {n} harmful and "
                         f"{res.n_prompts['harmless']} harmless validation prompts ({res.config['protocol']} "
                         f"protocol). The table is the Pareto front; the picked trial (lowest KL at the fewest "
                         f"refusals) is {best['number']}: {best['refusals']:g}/{n} refusals, KL {best['kl']:.4f}.",
                    tables=[pd.DataFrame(rows)], figures={"search_pareto": res.figure(best)})]


def stage_configs(results: dict) -> dict:
    """Each stage's exact config, for the report's configuration block."""
    return {stage: r.config.to_dict() for stage, r in results.items()}
