"""``refusal-tl cone``: multi-dimensional refusal cones (RCO, Algorithm 2)."""

from __future__ import annotations

from refusal_tl.commands.common import choices, filtered, model_args, model_of, run_args, train_args
from refusal_tl.cone import ConeConfig, ConeRunConfig, run_cone
from refusal_tl.dim import dim_path
from refusal_tl.errors import RefusalTLError

NAME = "cone"
HELP = "train multi-dimensional refusal cones (RCO, Algorithm 2)"
DESCRIPTION = """\
Reads RUN_DIR/dim/direction.safetensors (alpha, layer) and the RDO training pairs, and for
every dimension N in --dims trains an orthonormal basis B (N x d) so that every direction
of its cone {normalise(s^T B): s >= 0} mediates refusal: the RDO loss on fresh cone samples
(per example) plus on each basis vector, ordered Gram-Schmidt after every step. Each
dimension starts from the previous one's lowest-loss basis plus one random row. Writes
RUN_DIR/cone-{N}/{basis.safetensors,basis.json,history.json,selection.json,
metadata.json,checkpoint.safetensors,figures/}; rerun the same command to resume.
Costs per profile: docs/performance.md (paper: use a GPU)."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--run", " (with dim/ and, for --init rdo, rdo/)")
    p.add_argument("--dims", default=None, help="cone dimensions, e.g. 2,3 or 2-5 (default from the profile)")
    p.add_argument("--init", default=None, choices=choices(ConeRunConfig, "init"),
                   help="first dimension from random rows (official) or the RDO direction plus random rows")
    p.add_argument("--samples", type=int, default=None, help="fresh cone samples per example and step")
    p.add_argument("--sampling", default=None, choices=choices(ConeConfig, "sampling"))
    p.add_argument("--selection", default=None, choices=choices(ConeRunConfig, "selection"))
    p.add_argument("--filter-samples", type=int, default=None, help="fixed samples behind the selection filters")
    p.add_argument("--kl-threshold", type=float, default=None, help="largest allowed sample KL (default 0.1)")
    p.add_argument("--early-stop", action="store_true", help="stop growing when no basis vector bypasses refusal")
    train_args(p)


def parse_dims(text: str | None) -> tuple[int, ...] | None:
    """``"2,3"`` or ``"2-5"`` -> the dimensions; a clear error otherwise."""
    if text is None:
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            return tuple(range(lo, hi + 1))
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise RefusalTLError(f"--dims takes integers like 2,3 or 2-5, got {text!r}.") from None


def run(args) -> None:
    cone = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
                n_samples=args.samples, sampling=args.sampling)
    cfg = ConeRunConfig.from_profile(
        args.profile, cone=cone, model=args.model, dims=parse_dims(args.dims), init=args.init,
        selection=args.selection, filter_samples=args.filter_samples, kl_threshold=args.kl_threshold,
        early_stop=args.early_stop or None, batch_size=args.batch_size, max_steps=args.max_steps,
        n_train=args.n_train, filter_prompts=filtered(args),
    )  # validates every option before the model loads
    dim_path(args.run)
    res = run_cone(cfg, args.run, model_of(args, cfg.model))
    for n, sel in res.selections.items():
        row = sel.chosen
        print(f"cone dim {n}: step {row['step'] + 1} ({sel.how}), train loss {row['train_loss']:.3f}; "
              f"fixed samples: bypass {row['sample_bypass']:.2f}, induce {row['sample_induce']:.2f}, "
              f"max KL {row['sample_kl_max']:.3f}; basis bypass {', '.join(f'{b:.2f}' for b in row['basis_bypass'])}")
    print(f"wrote {', '.join(str(args.run / f'cone-{n}') for n in res.cones)}  ({sum(res.seconds.values()):.0f} s)")
