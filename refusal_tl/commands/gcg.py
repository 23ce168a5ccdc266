"""``refusal-tl gcg``: adversarial suffixes that switch a direction off from the input."""

from __future__ import annotations

from pathlib import Path

from refusal_tl import data
from refusal_tl.commands.common import load_direction, model_args, model_of, run_args
from refusal_tl.dim import dim_path, load_dim
from refusal_tl.gcg import GcgConfig, run_gcg

NAME = "gcg"
HELP = "adversarial suffixes that switch a direction off from the input (GCG)"
DESCRIPTION = """\
Per prompt, greedy coordinate gradient optimises a suffix (prompt + " " + suffix, from 20 x "!")
for L = CE(target) + w_aux * (h . r)^2: the target is the first 20 characters of the prompt's
completion with DIM ablated, h the residual stream at the aux layer and the last template
token, r the --direction (RepInd-1 in the paper). --aux-weight 0 is plain GCG. Writes
OUT/results.jsonl (prompt, suffix, layer, losses, cos_plain, cos_suffixed, completion,
refused), OUT/targets.json and OUT/checkpoints/; rerun to resume."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--run", " (with dim/ from `refusal-tl dim`: the targets)")
    p.add_argument("--direction", required=True, type=Path, help="the direction to switch off (RUN/repind-1/...)")
    p.add_argument("--prompts", required=True, help="harmful prompt file or bundled:harmful:test")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--aux-weight", type=float, default=None, help="w_aux (default 10; 0: plain GCG)")
    p.add_argument("--aux-layer", type=int, default=None, help="layer of h (default round(15/26 * L))")
    p.add_argument("--search-width", type=int, default=None, help="candidates per step")
    p.add_argument("--topk", type=int, default=None, help="tokens per position to sample from")
    p.add_argument("--n", type=int, default=None, help="attack only the first N prompts")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, type=Path, help="output folder")


def run(args) -> None:
    cfg = GcgConfig.from_profile(args.profile, model=args.model, steps=args.steps, aux_weight=args.aux_weight,
                                 aux_layer=args.aux_layer, search_width=args.search_width, topk=args.topk,
                                 n_prompts=args.n, seed=args.seed)  # validates every option before the model loads
    dim_path(args.run)
    prompts = data.load_source(args.prompts)
    direction = load_direction(args.direction)
    model = model_of(args, cfg.model)
    rows = run_gcg(cfg, model, direction, load_dim(args.run, model), prompts, args.out)
    for r in rows:
        print(f"{'refused ' if r.refused else 'answered'} | cos at layer {r.layer}: {r.cos_plain[r.layer]:+.3f} -> "
              f"{r.cos_suffixed[r.layer]:+.3f} | {r.prompt[:50]!r} + {r.suffix!r}")
    print(f"{sum(not r.refused for r in rows)}/{len(rows)} suffixed prompts answered -> {args.out / 'results.jsonl'}")
