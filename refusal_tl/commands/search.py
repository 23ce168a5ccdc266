"""``refusal-tl search``: Optuna search over abliteration edits of a run's directions."""

from __future__ import annotations

from refusal_tl.abliterate.search import OBJECTIVES, SearchConfig, run_search
from refusal_tl.commands.common import model_args, model_of, run_args
from refusal_tl.dim import dim_path

NAME = "search"
HELP = "search abliteration edits (direction, variant, per-layer kernel) with multi-objective TPE"
DESCRIPTION = """\
Searches which direction of RUN (DIM at any layer or fractional index, DIM per layer, RDO,
RDO-perp, a cone basis vector or sampled cone direction, the RepInd top-k span), which
variant (projection or biprojection, norm-preserving or not) and which per-layer kernel for
o_proj and down_proj (heretic's max_weight, max_weight_position, min_weight,
min_weight_distance) remove refusals with the least damage: refusals on harmful and
first-token KL on harmless validation prompts (optionally refusals on sensitive prompts),
in heretic's protocol by default. Multi-objective TPE (Optuna); the study is an Optuna
journal in RUN/search/journal.log, so a killed search resumes (same trials, same seed).
Writes RUN/search/{result.json,defaults.json,figures/pareto.html}; then
`refusal-tl export --from-search RUN/search --trial best --out DIR`."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--run", " (with the directions of `refusal-tl reproduce`)")
    p.add_argument("--trials", type=int, default=None, help="total trials (default from the profile; resumes)")
    p.add_argument("--objective", default=None,
                   help=f"comma-separated, from {', '.join(OBJECTIVES)} (default refusals,kl)")
    p.add_argument("--protocol", default=None, choices=["heretic", "default"],
                   help="evaluation protocol (default heretic: its system prompt, 100 tokens, its markers)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length (default: the protocol's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pick", type=float, default=None, metavar="MAX_REFUSALS",
                   help="report the lowest-KL trial with at most this many refusals (default: the fewest reached)")


def run(args) -> None:
    objectives = tuple(args.objective.split(",")) if args.objective else None
    cfg = SearchConfig.from_profile(args.profile, trials=args.trials, objectives=objectives, protocol=args.protocol,
                                    max_new_tokens=args.max_new_tokens, seed=args.seed, batch_size=args.batch_size)
    dim_path(args.run)
    res = run_search(cfg, args.run, model_of(args))
    n = res.n_prompts["harmful"]
    print(f"{len(res.trials)} trials, {res.seconds_per_trial:.1f} s per trial; front:")
    for t in res.front():
        print(f"  trial {t['number']:>3}: refusals {t['refusals']:g}/{n}, KL {t['kl']:.4f}  ({t['params']['source']})")
    for name, d in res.defaults.items():
        print(f"  {name} ablation (trial {d['number']}): refusals {d['refusals']:g}/{n}, KL {d['kl']:.4f}")
    best = res.pick(args.pick)
    print(f"picked trial {best['number']}: refusals {best['refusals']:g}/{n}, KL {best['kl']:.4f} "
          f"-> {args.run / 'search'} (figures/pareto.html)")
