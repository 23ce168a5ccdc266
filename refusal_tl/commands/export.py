"""``refusal-tl export``: the directions baked into the weights (HF folder or GGUF)."""

from __future__ import annotations

from pathlib import Path

from refusal_tl.commands.common import load_direction, model_args, model_of
from refusal_tl.export import FORMATS, export_model
from refusal_tl.gguf_file import DTYPES as GGUF_DTYPES

NAME = "export"
HELP = "write a weight-orthogonalised model that plain transformers loads"
DESCRIPTION = """\
Bakes directional ablation into the weights (W <- W - r r^T W on the embedding, every
attention o_proj and MLP down_proj; a tied unembedding is untied and kept) and writes
safetensors + config + tokenizer to OUT: AutoModelForCausalLM.from_pretrained(OUT) then
refuses like the hook-ablated model (--format gguf: OUT/model.gguf, for llama.cpp too).
Several --direction flags bake their span. The weights keep the loaded dtype (--dtype)."""


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced if it is an earlier export)")
    p.add_argument("--format", default="hf", choices=list(FORMATS), help="gguf: Qwen2 / Llama models only")
    p.add_argument("--gguf-dtype", default="f32", choices=list(GGUF_DTYPES),
                   help="GGUF tensor type (f16: half the file)")


def run(args) -> None:
    directions = [load_direction(p) for p in args.direction]
    model = model_of(args)
    out = export_model(model, directions, args.out, args.format, args.gguf_dtype)
    how = f"'{out}', gguf_file='model.gguf'" if args.format == "gguf" else f"'{out}'"
    print(f"wrote {out}: {model.name} with {', '.join(d.method for d in directions)} ablated in the weights "
          f"(load it with AutoModelForCausalLM.from_pretrained({how}))")
