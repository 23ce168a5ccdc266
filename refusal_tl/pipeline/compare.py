"""Figures across run directories (paper Figs. 2, 3/4 and 10 for several models), one colour per run.

Each run directory holds the cached evaluations ``refusal-tl reproduce`` (or ``make demo``, or the
notebooks) wrote in ``RUN/eval``: :func:`load_runs` reads them without loading any model, so runs
of different models, dtypes or machines are compared side by side. ``refusal-tl compare RUN RUN …``
writes the figures as one HTML page; notebook 03 draws them when ``REFUSAL_TL_COMPARE_RUNS`` names
runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from refusal_tl.errors import RefusalTLError
from refusal_tl.plotting.common import COLORS, interval_bars
from refusal_tl.stats import wilson


@dataclass
class RunData:
    """A run directory's label and its cached evaluations (``methods``, ``cone_ablate``, …)."""

    label: str
    path: Path
    evals: dict = field(default_factory=dict)


def run_label(path: Path) -> str:
    """``model (dtype)`` from the run's DIM direction metadata, else the folder's name."""
    meta = path / "dim" / "direction.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        model = str(m.get("model", path.name)).split("/")[-1]
        return f"{model} ({m['dtype']})" if m.get("dtype") else model
    return path.name


def load_runs(paths: list[str | Path], labels: list[str] | None = None) -> list[RunData]:
    """The cached evaluations of each run directory; a run without ``eval/methods.json`` is a clear error."""
    if labels is not None and len(labels) != len(paths):
        raise RefusalTLError(f"{len(labels)} labels for {len(paths)} run directories: give one label per run.")
    runs = []
    for i, p in enumerate(map(Path, paths)):
        folder = p / "eval"
        if not (folder / "methods.json").is_file():
            raise RefusalTLError(f"{p} has no evaluated results (eval/methods.json): run "
                                 f"`refusal-tl reproduce --out {p}` (or open its notebooks) first.")
        evals = {f.stem: json.loads(f.read_text())["data"] for f in sorted(folder.glob("*.json"))}
        runs.append(RunData(labels[i] if labels else run_label(p), p, evals))
    names = [r.label for r in runs]
    for r in runs:  # equal labels (the same model twice) get the folder's name too
        if names.count(r.label) > 1:
            r.label = f"{r.label} [{r.path.name}]"
    return runs


def _bar(fig: go.Figure, run: RunData, color: str, xs: list[str], rates: list[float], sizes: list[int]) -> None:
    ys = [100 * r for r in rates]
    fig.add_trace(go.Bar(x=xs, y=ys, name=run.label, marker_color=color,
                         error_y=interval_bars(ys, [wilson(round(r * n), n) for r, n in zip(rates, sizes)])))


def methods_across(runs: list[RunData], conditions: dict[str, str], title: str, which: str) -> go.Figure:
    """One bar per (method, condition) and run, one colour per run, Wilson intervals as error bars;
    the unsteered rate of each run as a dotted marker."""
    fig = go.Figure()
    for k, run in enumerate(runs):
        m, color = run.evals["methods"], COLORS[k % len(COLORS)]
        n = len(m["prompts"][which])
        rows = [r for r in m["rows"] if r["method"] != "no intervention"]
        xs = [f"{r['method']} {label}" for r in rows for label in conditions.values()]
        rates = [r[c] for r in rows for c in conditions]
        _bar(fig, run, color, xs, rates, [n] * len(rates))
        base = m["rows"][0][f"{which}/none"]
        fig.add_trace(go.Scatter(x=xs, y=[100 * base] * len(xs), mode="lines", line=dict(color=color, dash="dot"),
                                 name=f"{run.label}: no intervention"))
    fig.update_layout(barmode="group", title=title + " (bars: 95 % Wilson intervals; dotted: no intervention)",
                      yaxis_title="% refused", yaxis_range=[0, 110], height=450, width=950)
    return fig


def cones_across(runs: list[RunData]) -> go.Figure:
    """Fig. 3/4 across runs: the refusal rate of each sampled cone direction under ablation, one box
    per (cone dimension, run), one colour per run."""
    fig = go.Figure()
    for k, run in enumerate(runs):
        cone = run.evals.get("cone_ablate")
        if not cone:
            continue
        xs = [f"dim {c['dims']}" for c in cone["cones"] for _ in c["rates"]]
        ys = [100 * r for c in cone["cones"] for r in c["rates"]]
        fig.add_trace(go.Box(x=xs, y=ys, name=run.label, marker_color=COLORS[k % len(COLORS)], boxpoints="all",
                             jitter=0.4, pointpos=0, marker=dict(size=3)))
    fig.update_layout(boxmode="group", title="Refusal rate of cone samples under ablation across runs (Figs. 3/4)",
                      yaxis_title="% refused (substring judge)", yaxis_range=[-5, 105], xaxis_title="cone dimension",
                      height=450, width=850)
    return fig


def compare_figures(runs: list[RunData]) -> dict[str, go.Figure]:
    """Figs. 2, 10 and (where the runs have cones) 3/4 across the runs."""
    figs = {
        "fig2_across_runs": methods_across(runs, {"harmful/ablate": "ablation", "harmful/subtract": "subtraction"},
                                           "Jailbreak: refusal on harmful prompts across runs (Fig. 2)", "harmful"),
        "fig10_across_runs": methods_across(runs, {"harmless/add": "addition"},
                                            "Induced refusal on harmless prompts across runs (Fig. 10)", "harmless"),
    }
    if any("cone_ablate" in r.evals for r in runs):
        figs["fig3_across_runs"] = cones_across(runs)
    return figs
