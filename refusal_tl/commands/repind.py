"""``refusal-tl repind``: representationally independent directions (paper §6)."""

from __future__ import annotations

from refusal_tl.commands.common import filtered, model_args, model_of, run_args, train_args
from refusal_tl.dim import dim_path
from refusal_tl.errors import literal_fields
from refusal_tl.repind import RepIndConfig, RepIndRunConfig, run_repind

NAME = "repind"
HELP = "representationally independent refusal directions (paper Sec. 6)"
DESCRIPTION = """\
Iteratively trains K directions, each with the RDO loss plus lambda_ind * L_ind, the
representational-independence loss against DIM and every earlier RepInd direction (cosine
traces at the last prompt token or, --ind-tokens all, averaged over the prompt's tokens;
layers 0..0.9L-1, both ways). Each of --candidates random starts keeps its lowest-loss
vector; the one with the lowest refusal score under ablation on the filtered harmful val
prompts wins. Writes RUN_DIR/repind-{k}/{direction.safetensors, history.json,metadata.json,
candidate{c}.safetensors,figures/}; rerun the same command to resume.
Costs per profile: docs/performance.md (paper: use a GPU)."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--run", " (with dim/ from `refusal-tl dim`)")
    p.add_argument("--k", type=int, default=None, help="how many directions (default from the profile)")
    p.add_argument("--candidates", type=int, default=None, help="random starts per direction")
    p.add_argument("--lambda-ind", type=float, default=None, help="weight of L_ind (default 200)")
    p.add_argument("--layer-fraction", type=float, default=None,
                   help="L_ind over layers 0..int(F*L)-1 (default 0.9, official; 1 for every layer)")
    p.add_argument("--ind-tokens", choices=literal_fields(RepIndConfig)["tokens"], default=None,
                   help="L_ind at the last prompt token (paper Sec. 6, official code) or averaged over the "
                        "prompt's tokens (paper App. A); default from the profile")
    train_args(p)


def run(args) -> None:
    repind = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
                  ind_weight=args.lambda_ind, layer_fraction=args.layer_fraction, tokens=args.ind_tokens)
    cfg = RepIndRunConfig.from_profile(
        args.profile, repind=repind, model=args.model, k=args.k, candidates=args.candidates, n_train=args.n_train,
        batch_size=args.batch_size, max_steps=args.max_steps, filter_prompts=filtered(args),
    )  # validates every option before the model loads
    dim_path(args.run)
    res = run_repind(cfg, args.run, model_of(args, cfg.model))
    for d, cands in zip(res.directions, res.candidates):
        p = d.provenance
        print(f"RepInd-{p.k}: candidate {p.candidate + 1}/{len(cands)}, step {p.step}, "
              f"val refusal score {p.val_refusal_score:.2f}; cosine to V "
              f"{', '.join(f'{c:.2f}' for c in p.cosines_to_V)} -> {args.run / f'repind-{p.k}'}")
    print(f"({sum(res.seconds.values()):.0f} s)")
