"""Foundation benchmarks on the bundled model: one batch, contenders interleaved.

Prints median time ratios over interleaved rounds (A B A B …) with their spread:

- hooked forward (bridge + ablation hooks at every layer) vs plain HF forward   target <= 1.10
- greedy generation with hook ablation vs plain HF ``generate``                  target <= 1.15
- HF ``generate`` with baked (orthogonalised) weights vs plain HF ``generate``  target <= 1.05
- DIM extraction (``eoi_activations``) vs naive ``run_with_cache`` of all hooks   target >= 1.5x faster

Usage:  python benchmarks/bench_foundation.py [--batch 16] [--new-tokens 32] [--rounds 5]
"""

from __future__ import annotations

import argparse

import torch
from timing import Results, interleaved

from refusal_tl import data, profiles
from refusal_tl.dim.extract import eoi_activations
from refusal_tl.model import load_model, wrap_hf_model
from refusal_tl.model.bundled import ensure_bundled
from refusal_tl.steer.generation import greedy_tokens
from refusal_tl.steer.hooks import ablation_hooks, orthogonalize_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=profiles.profile("cpu", "dim")["batch_size"])
    p.add_argument("--new-tokens", type=int, default=profiles.profile("cpu", "eval")["max_new_tokens"])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_bundled()
    model = load_model("bundled")
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=model.dtype).eval()  # the same dtype as the bridge
    prompts = data.bundled("harmful", "val", args.batch)
    batch = model.chat.tokenize(prompts)
    r = torch.randn(model.d_model)
    hooks = ablation_hooks(r, model.n_layers)
    n_tok = args.new_tokens
    res = Results("foundation", "The bridge and hooks against plain transformers; DIM extraction",
                  f"batch {tuple(batch.ids.shape)} of the bundled model in {model.dtype_name}, {n_tok} new tokens, "
                  f"{args.rounds} interleaved rounds")

    t = interleaved({
        "plain": lambda: plain(batch.ids, attention_mask=batch.mask),
        "hooked": lambda: model.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask, fwd_hooks=hooks),
    }, args.rounds)
    res.ratio("forward: bridge + ablation hooks at every layer vs plain HF", t, "hooked", "plain", "<= 1.10")

    def hf_generate(m):
        return m.generate(input_ids=batch.ids, attention_mask=batch.mask, max_new_tokens=n_tok,
                          min_new_tokens=n_tok, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)

    baked_hf = AutoModelForCausalLM.from_pretrained(folder, dtype=model.dtype).eval()
    orthogonalize_weights(baked_hf, r)
    baked = wrap_hf_model(baked_hf, AutoTokenizer.from_pretrained(folder), name="baked", device="cpu")
    t = interleaved({
        "plain": lambda: hf_generate(plain),
        "hooked": lambda: greedy_tokens(model, batch, n_tok, hooks, stop_at_eos=False),
        "baked": lambda: hf_generate(baked_hf),
        "baked_bridge": lambda: greedy_tokens(baked, batch, n_tok, stop_at_eos=False),
    }, args.rounds)
    res.ratio("greedy generation with hook ablation vs plain HF generate", t, "hooked", "plain", "<= 1.15")
    res.ratio("HF generate with baked weights vs plain (both HF modules wrapped by a bridge)", t, "baked", "plain",
              "<= 1.05")
    res.ratio("refusal_tl greedy on the baked bridge vs plain HF generate", t, "baked_bridge", "plain")

    def naive_extract():
        _, cache = model.bridge.run_with_cache(batch.ids, attention_mask=batch.mask)
        return torch.stack([cache[f"blocks.{l}.hook_resid_pre"][:, -5:] for l in range(model.n_layers)], 2)

    t = interleaved({"naive": naive_extract,
                     "ours": lambda: eoi_activations(model, prompts, args.batch, with_scores=False)}, args.rounds)
    ours = eoi_activations(model, prompts, args.batch, with_scores=False).acts
    ok = torch.allclose(ours, naive_extract().float(), atol=1e-3)
    res.ratio("DIM extraction: naive run_with_cache of every hook vs eoi_activations", t, "naive", "ours", ">= 1.5",
              f"same activations: {ok}")
    res.write()


if __name__ == "__main__":
    main()
