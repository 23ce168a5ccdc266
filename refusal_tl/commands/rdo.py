"""``refusal-tl rdo``: RDO (Algorithm 1), or RDO⊥ with ``--orthogonal-to``."""

from __future__ import annotations

from pathlib import Path

from refusal_tl import profiles
from refusal_tl.commands.common import choices, filtered, load_direction, model_args, model_of, run_args, train_args
from refusal_tl.dim import dim_path
from refusal_tl.rdo import RdoConfig, RdoRunConfig, run_rdo

NAME = "rdo"
HELP = "train a refusal direction by gradient descent (RDO, Algorithm 1)"
DESCRIPTION = """\
Reads RUN_DIR/dim/direction.safetensors (alpha = its norm, l_add = its layer), builds
targets (t_answer under DIM ablation, t_refusal under +alpha*DIM, t_retain) for filtered,
balanced train pairs, and trains a unit direction r on the sphere with
L = lambda_abl*L_abl + lambda_add*L_add + lambda_ret*L_ret (defaults: --help below; the paper
profile uses the paper's retain KL, ci/cpu the authors' code's summed retain KL).
Writes RUN_DIR/rdo/{direction.safetensors,direction.json,history.json,metadata.json,
checkpoint.safetensors,figures/}. Training checkpoints every step; rerun the same command
to resume. Costs per profile: docs/performance.md (paper: use a GPU)."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--run", " (with dim/ from `refusal-tl dim`)")
    p.add_argument("--layer", type=int, default=None, help="addition layer l_add (default: the DIM layer)")
    for term, what in (("abl", "ablation"), ("add", "addition"), ("ret", "retain")):
        p.add_argument(f"--lambda-{term}", type=float, default=None,
                       help=f"weight of the {what} loss (default {profiles.RDO_WEIGHTS[term]})")
    p.add_argument("--retain-kl", default=None, choices=choices(RdoConfig, "retain_kl"),
                   help="paper: KL(clean||ablated) averaged over the window (paper profile); "
                        "code: the authors' reversed KL summed over the window (ci/cpu)")
    p.add_argument("--selection", default=None, choices=choices(RdoRunConfig, "selection"),
                   help="lowest_loss (official) or Arditi's filters over the last 20 steps")
    train_args(p)
    p.add_argument("--restarts", type=int, default=None,
                   help="random initialisations (seeds SEED, SEED+1, ...); the lowest training loss wins (default 1)")
    p.add_argument("--refusal-targets", default=None, choices=choices(RdoRunConfig, "refusal_targets"),
                   help="L_add on every t_refusal (paper) or only on those that are refusals (ci/cpu profiles)")
    p.add_argument("--plateau-window", type=int, default=None,
                   help="step losses averaged by the reduce-on-plateau rule (1: the paper's raw step loss)")
    p.add_argument("--harmful-train", default=None, help="harmful train prompts file; default bundled")
    p.add_argument("--harmless-train", default=None, help="harmless train prompts file; default bundled")
    p.add_argument("--orthogonal-to", type=Path, action="append", default=None, metavar="FILE",
                   help="direction.safetensors r must stay orthogonal to (hard constraint, repeatable): "
                        "RDO-perp with RUN/dim/direction.safetensors")
    p.add_argument("--name", default=None, help="output folder RUN/NAME (default rdo; rdo-perp with --orthogonal-to)")


def run(args) -> None:
    weights = {k: v for k, v in (("abl", args.lambda_abl), ("add", args.lambda_add), ("ret", args.lambda_ret))
               if v is not None}
    rdo = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
               plateau_window=args.plateau_window, retain_kl=args.retain_kl, weights=weights)
    cfg = RdoRunConfig.from_profile(
        args.profile, rdo=rdo, model=args.model, n_train=args.n_train, layer=args.layer,
        selection=args.selection, refusal_targets=args.refusal_targets, restarts=args.restarts,
        batch_size=args.batch_size, max_steps=args.max_steps, filter_prompts=filtered(args),
        harmful_train=args.harmful_train, harmless_train=args.harmless_train,
    )  # validates every option before the model loads
    dim_path(args.run)
    orthogonal = [load_direction(p) for p in args.orthogonal_to or []]
    name = args.name or ("rdo-perp" if orthogonal else "rdo")
    res = run_rdo(cfg, args.run, model_of(args, cfg.model), name=name, orthogonal_to=orthogonal)
    h = res.run.history[res.selection.step]
    print(f"RDO{'⊥' if orthogonal else ''}: {res.run.step} steps, selected step {h['step']} ({res.selection.how}): "
          f"L_abl {h['abl']:.3f}, L_add {h['add']:.3f}, L_ret {h['ret']:.4f}; cosine to DIM {res.cosine_to_dim:.3g}")
    print(f"wrote {res.run_dir}  ({sum(res.seconds.values()):.0f} s)")
