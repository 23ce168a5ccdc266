"""``refusal-tl export``: directions or a search trial's edit baked into the weights (HF folder,
GGUF) or written as a LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from refusal_tl.abliterate.search import SearchResult, trial_edit
from refusal_tl.commands.common import load_direction, model_args, model_of
from refusal_tl.errors import RefusalTLError
from refusal_tl.export import FORMATS, export_edit, export_model
from refusal_tl.gguf_file import DTYPES as GGUF_DTYPES

NAME = "export"
HELP = "write a weight-orthogonalised model (or a LoRA adapter) that plain transformers loads"
DESCRIPTION = """\
Bakes directional ablation into the weights (W <- W - r r^T W on the embedding, every
attention o_proj and MLP down_proj; a tied unembedding is untied and kept) and writes
safetensors + config + tokenizer to OUT: AutoModelForCausalLM.from_pretrained(OUT) then
refuses like the hook-ablated model (--format gguf: OUT/model.gguf, for llama.cpp too;
--format lora: a peft adapter, PeftModel.from_pretrained(base, OUT)).
Several --direction flags bake their span. --from-search RUN/search --trial T|best exports a
trial of `refusal-tl search` instead (best: the lowest KL with at most --max-refusals refusals).
The weights keep the loaded dtype (--dtype)."""


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", type=Path, action="append", help="direction file (repeatable)")
    p.add_argument("--from-search", type=Path, default=None, help="RUN/search of `refusal-tl search`")
    p.add_argument("--trial", default="best", help="trial number, or best (default)")
    p.add_argument("--max-refusals", type=float, default=None, help="the pick rule's target for --trial best")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced if it is an earlier export)")
    p.add_argument("--format", default="hf", choices=list(FORMATS), help="gguf: Qwen2 / Llama models only")
    p.add_argument("--gguf-dtype", default="f32", choices=list(GGUF_DTYPES),
                   help="GGUF tensor type (f16: half the file)")
    p.add_argument("--lora-rank", type=int, default=3,
                   help="rank of norm-preserving edits' adapters (projections are exact at rank 1 per direction)")


def run(args) -> None:
    if bool(args.direction) == bool(args.from_search):
        raise RefusalTLError("pass either --direction FILE (repeatable) or --from-search RUN/search.")
    if args.direction:
        directions = [load_direction(p) for p in args.direction]
        model = model_of(args)
        out = export_model(model, directions, args.out, args.format, args.gguf_dtype, args.lora_rank)
        what = ", ".join(d.method for d in directions) + " ablated"
    else:
        res = SearchResult.load(args.from_search)
        trial = res.trial(args.trial, args.max_refusals)
        model = model_of(args)
        edit = trial_edit(res, trial, model)
        meta = {"search": str(args.from_search), "trial": trial}
        out = export_edit(model, edit, args.out, args.format, args.gguf_dtype, args.lora_rank, meta)
        what = f"search trial {trial['number']} ({trial['params']['source']})"
    how = (f"'{out}', gguf_file='model.gguf'" if args.format == "gguf" else
           f"base, '{out}'" if args.format == "lora" else f"'{out}'")
    loader = "PeftModel" if args.format == "lora" else "AutoModelForCausalLM"
    print(f"wrote {out}: {model.name} with {what} (load it with {loader}.from_pretrained({how}))")
