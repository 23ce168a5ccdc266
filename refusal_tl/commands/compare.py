"""``refusal-tl compare``: Figs. 2, 3/4 and 10 across run directories, one colour per run."""

from __future__ import annotations

from pathlib import Path

from refusal_tl.pipeline.compare import compare_figures, load_runs
from refusal_tl.pipeline.report import Section, write_report

NAME = "compare"
HELP = "figures across run directories (several models, dtypes or machines)"
DESCRIPTION = """\
Reads the cached evaluations of each RUN (what `refusal-tl reproduce` or the notebooks wrote in
RUN/eval; no model is loaded) and writes one HTML page with the paper's Fig. 2 (refusal on harmful
prompts under ablation and subtraction), Fig. 10 (induced refusal under addition) and Figs. 3/4
(cone samples) across the runs, one colour per run, with 95 % intervals."""


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories (two or more)")
    p.add_argument("--labels", default=None, help="comma-separated labels (default: model (dtype) of each run)")
    p.add_argument("--out", type=Path, required=True, help="output HTML file")
    p.add_argument("-v", "--verbose", action="store_true")


def run(args) -> None:
    labels = args.labels.split(",") if args.labels else None
    runs = load_runs(args.runs, labels)
    figs = compare_figures(runs)
    text = "; ".join(f"{r.label}: {r.path}" for r in runs)
    write_report(args.out, [Section("Across runs (paper Figs. 2, 3/4, 10)", text=text, figures=figs)],
                 "refusal_tl: runs compared", {"runs": [str(r.path) for r in runs]})
    print(f"{len(figs)} figures across {len(runs)} runs -> {args.out}")
