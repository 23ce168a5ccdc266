"""``refusal-tl chat``: the original and the intervened model side by side."""

from __future__ import annotations

from pathlib import Path

from refusal_tl.chat import Side, run_chat
from refusal_tl.commands.common import load_direction, model_args, model_of
from refusal_tl.eval.evaluate import check_several, direction_hooks
from refusal_tl.steer.hooks import AT_LAYER

NAME = "chat"
HELP = "chat with the original and the intervened model side by side"
DESCRIPTION = ("Every message goes to both: the original model (left) and the model under the intervention "
               "(right), streamed (greedy), each with its own conversation. /reset clears them, /quit or Ctrl-D "
               "leaves.")


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    p.add_argument("--intervention", default="ablate", choices=["ablate", *AT_LAYER])
    p.add_argument("--layer", type=int, default=None, help="addition layer (default: the direction's)")
    p.add_argument("--alpha", type=float, default=None, help="addition strength (default: the direction's norm)")
    p.add_argument("--max-new-tokens", type=int, default=256)


def run(args) -> None:
    check_several(len(args.direction), args.intervention)  # before the model loads
    directions = [load_direction(p) for p in args.direction]
    model = model_of(args)
    hooks = direction_hooks(model, directions, args.intervention, args.layer, args.alpha)
    what = f"{args.intervention} {'+'.join(d.method for d in directions)}"
    run_chat(model, [Side("original"), Side(what, hooks)], args.max_new_tokens)
