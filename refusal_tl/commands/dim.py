"""``refusal-tl dim``: DIM candidates and Arditi et al.'s selection."""

from __future__ import annotations

from refusal_tl.commands.common import filtered, model_args, model_of, run_args
from refusal_tl.dim import DimConfig, run_dim
from refusal_tl.io import ensure_dir

NAME = "dim"
HELP = "extract DIM refusal directions and select one"
DESCRIPTION = """\
Difference-in-means refusal directions for every layer x post-instruction position,
then Arditi et al.'s selection: lowest refusal score under ablation on harmful val,
among candidates with KL <= 0.1 on harmless val, induce score >= 0 and not in the last
20% of layers. Writes RUN_DIR/dim/{direction.safetensors,direction.json,selection.csv,
candidates.safetensors,metadata.json,figures/*.html}. Reruns resume from checkpoints.
Costs per profile: docs/performance.md (ci: minutes; paper: use a GPU)."""


def add_arguments(p) -> None:
    model_args(p)
    run_args(p, "--out", "")
    p.add_argument("--n-train", type=int, default=None, help="train prompts per class (before filtering)")
    p.add_argument("--n-val", type=int, default=None, help="val prompts per class (before filtering)")
    p.add_argument("--n-val-harmless", type=int, default=None, help="harmless val prompts, if not --n-val")
    p.add_argument("--positions", default=None, help="EOI positions to search: all, or e.g. --positions=-2,-1 (ci: -1)")
    p.add_argument("--no-filter", action="store_true", help="keep prompts whatever their baseline refusal score")
    for name in ("harmful-train", "harmless-train", "harmful-val", "harmless-val"):
        p.add_argument(f"--{name}", default=None,
                       help=f"{name} prompts: a file (.jsonl/.json/.csv/.txt), bundled:KIND:SPLIT or hub:NAME:SPLIT")


def run(args) -> None:
    cfg = DimConfig.from_profile(
        args.profile, model=args.model, n_train=args.n_train, n_val=args.n_val,
        n_val_harmless=args.n_val_harmless, batch_size=args.batch_size, positions=args.positions,
        filter_prompts=filtered(args), harmful_train=args.harmful_train, harmless_train=args.harmless_train,
        harmful_val=args.harmful_val, harmless_val=args.harmless_val, device=args.device, dtype=args.dtype,
    )
    ensure_dir(args.out / "dim")
    res = run_dim(cfg, args.out, model_of(args, cfg.model))
    s = res.selection.best
    print(f"selected layer {res.direction.layer}, position {res.direction.pos}, norm {res.direction.norm:.2f}: "
          f"bypass {s.bypass:.2f} (baseline {res.selection.baseline_bypass:.2f}), induce {s.induce:.2f}, KL {s.kl:.3f}")
    print(f"wrote {args.out / 'dim'}  ({sum(res.seconds.values()):.0f} s)")
