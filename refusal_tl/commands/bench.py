"""``refusal-tl bench``: lm-eval capability benchmarks with and without the directions ablated."""

from __future__ import annotations

from pathlib import Path

from refusal_tl import profiles
from refusal_tl.commands.common import load_direction, model_args, model_of
from refusal_tl.eval.benchmarks import lm_eval_scores
from refusal_tl.io import ensure_dir, write_json

NAME = "bench"
HELP = "capability benchmarks (lm-eval) with and without the direction ablated"
DESCRIPTION = ("capability benchmarks (lm-eval) with and without the direction ablated (in the weights; chat "
               "template). The paper's tasks download from the Hugging Face Hub; offline, use eval --capability.")


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    p.add_argument("--tasks", default="paper", help="comma list of lm-eval tasks (paper: Table 4's four)")
    p.add_argument("--limit", type=int, default=None, help="first N documents per task (default: all)")
    p.add_argument("--tasks-dir", type=Path, default=None, help="folder of your own lm-eval task YAMLs")
    p.add_argument("--out", required=True, type=Path, help="output JSON file")


def run(args) -> None:
    tasks = list(profiles.BENCH_TASKS) if args.tasks == "paper" else [t for t in args.tasks.split(",") if t]
    directions = [load_direction(p) for p in args.direction]
    ensure_dir(args.out.parent)
    model = model_of(args)
    name = "ablated: " + " + ".join(d.method for d in directions)
    res = lm_eval_scores(model, {name: directions}, tasks, args.limit, args.batch_size or 8, args.tasks_dir)
    write_json(args.out, res.to_dict())
    print(res.table().to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"({res.seconds:.0f} s) -> {args.out}")
