"""``refusal-tl traces``: cosine traces of a direction, clean and with another one ablated (Fig. 6)."""

from __future__ import annotations

from pathlib import Path

from refusal_tl import data
from refusal_tl.commands.common import load_direction, model_args, model_of
from refusal_tl.io import ensure_dir, write_json
from refusal_tl.repind import trace_pair

NAME = "traces"
HELP = "cosine traces of a direction, clean and with another one ablated (Fig. 6)"
DESCRIPTION = """\
cos(resid_pre_l at the last prompt token, A) for every layer l, on clean runs and on runs with
B ablated at every layer and position (measured after the ablation at that layer). Writes
{"layers", "clean_mean", "clean_std", "ablated_mean", "ablated_std", "peak_delta"}."""


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", required=True, type=Path, help="A: the direction whose cosine is traced")
    p.add_argument("--ablate", required=True, type=Path, help="B: the direction ablated")
    p.add_argument("--prompts", required=True, help="prompt file or bundled:harmful:val")
    p.add_argument("--n", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--out", required=True, type=Path, help="output JSON file")


def run(args) -> None:
    ensure_dir(args.out.parent)
    prompts = data.load_source(args.prompts, args.n)
    a, b = load_direction(args.direction), load_direction(args.ablate)
    model = model_of(args)
    trace = trace_pair(model, prompts, a.vector.to(model.device), b.vector.to(model.device),
                       (a.method, b.method), args.batch_size or 16)
    write_json(args.out, trace.to_dict())
    print(f"cos({a.method}, x) with {b.method} ablated: peak |Δcos| {trace.peak_delta:.3f} over "
          f"{len(prompts)} prompts -> {args.out}")
