"""``refusal-tl reproduce``: every stage of the paper in order, in one run directory."""

from __future__ import annotations

import time
from pathlib import Path

from refusal_tl import profiles
from refusal_tl.commands.common import model_args, model_of, profile_arg
from refusal_tl.pipeline.reproduce import ReproduceConfig, reproduce

NAME = "reproduce"
HELP = "every stage of the paper in order, in one run directory"
DESCRIPTION = """\
DIM -> RDO -> cones -> RDO-perp + RepInd -> GCG with one profile, in RUN; a stage already in
RUN with the same key (weights, dtype, prompts, config) is reused, an interrupted one resumes.
Then the held-out evaluation (the profile's `eval` sizes, cached in RUN/eval) and
RUN/report.html: every figure of notebooks 01-05 and a Table-5-shaped table. Wall time and
peak memory: RUN/timings.json. --stages picks some (plus what they read). Costs per profile:
docs/performance.md."""


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--out", required=True, type=Path, help="run directory RUN")
    profile_arg(p)
    p.add_argument("--stages", default=",".join(profiles.STAGES),
                   help=f"comma-separated subset of {','.join(profiles.STAGES)}")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the held-out evaluation behind the report's result figures and Table 5")


def run(args) -> None:
    cfg = ReproduceConfig(model=args.model, profile=args.profile, dtype=args.dtype, evaluate=not args.no_eval,
                          stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()))
    t0 = time.perf_counter()
    model = model_of(args, cfg.model)
    res = reproduce(cfg, args.out, model, load_seconds=time.perf_counter() - t0)
    for stage, t in res.timings.items():
        peak = f", peak {t['peak_rss_gb']:.1f} GB" if "peak_rss_gb" in t else ""
        print(f"{stage:>8}: {t['seconds']:8.1f} s{peak}")
    print(f"wrote {args.out / 'report.html'} (timings in {args.out / 'timings.json'})")
