"""What several subcommands share: the model and run-directory options, the training options,
an option's choices read from its config's ``Literal`` (written once), and loading a direction."""

from __future__ import annotations

import argparse
from pathlib import Path

from refusal_tl import profiles
from refusal_tl.errors import literal_fields
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.model.load import DTYPE_CHOICES


def choices(config: type, name: str) -> list[str]:
    """The values of ``config``'s ``Literal`` field ``name`` (validation reads the same ones)."""
    return list(literal_fields(config)[name])


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="bundled", help="bundled | HF id | folder | file.gguf (default: bundled)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_CHOICES),
                   help="weights and activations (default auto: bfloat16 on a GPU or CPU with native bf16, else "
                        "float32; directions, losses and scores stay float32)")
    p.add_argument("--device-map", default=None, help="passed to from_pretrained, e.g. 'auto' for multi-GPU")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass")
    p.add_argument("-v", "--verbose", action="store_true")


def profile_arg(p: argparse.ArgumentParser, what: str = "sizes") -> None:
    p.add_argument("--profile", default="cpu", choices=list(profiles.NAMES),
                   help=f"{what} from refusal_tl/profiles.py (default cpu)")


def run_args(p: argparse.ArgumentParser, flag: str, what: str) -> None:
    p.add_argument(flag, required=True, type=Path, help=f"run directory RUN_DIR{what}")
    profile_arg(p)


def train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--accumulation", type=int, default=None, help="examples per optimizer step")
    p.add_argument("--micro-batch", type=int, default=None, help="examples per forward pass (speed/memory only)")
    p.add_argument("--max-steps", type=int, default=None, help="stop (each run) after this many steps; resumable")
    p.add_argument("--n-train", type=int, default=None, help="train prompts per class before filtering")
    p.add_argument("--no-filter", action="store_true", help="keep prompts whatever their baseline refusal score")
    p.add_argument("--seed", type=int, default=None)


def filtered(args) -> bool | None:
    """``--no-filter`` as a config value (None: the profile's)."""
    return False if args.no_filter else None


def model_of(args, spec: str | None = None) -> RefusalModel:
    """The model the options name (``spec``: the config's model, when it was validated first)."""
    return load_model(spec or args.model, args.device, args.dtype, args.device_map)


def load_direction(path: Path) -> RefusalDirection:
    return RefusalDirection.load(path)
