"""Foundation benchmarks on the bundled model: one batch, measured in one run.

Prints measured time ratios (lower is better for the first three, higher for the last):

- hooked forward (bridge + ablation hooks at every layer) vs plain HF forward   target <= 1.10
- greedy generation with hook ablation vs plain HF ``generate``                  target <= 1.15
- greedy generation with baked (orthogonalised) weights vs plain HF ``generate`` target <= 1.05
- DIM extraction (``eoi_activations``) vs naive ``run_with_cache`` of all hooks   target >= 1.5x faster

Usage:  python benchmarks/bench_foundation.py [--batch 16] [--new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from refusal_tl import data
from refusal_tl.bundled import ensure_bundled
from refusal_tl.dim import eoi_activations
from refusal_tl.generation import greedy_tokens
from refusal_tl.hooks import ablation_hooks, orthogonalize_weights
from refusal_tl.model import load_model, wrap_hf_model


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_bundled()
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model = load_model("bundled")
    prompts = data.bundled("harmful", "val", args.batch)
    batch = model.chat.tokenize(prompts)
    r = torch.randn(model.d_model)
    hooks = ablation_hooks(r, model.n_layers)
    n_tok = args.new_tokens
    print(f"batch {tuple(batch.ids.shape)}, {n_tok} new tokens, best of {args.repeats}, "
          f"{torch.get_num_threads()} threads")

    t_hf = best_of(lambda: plain(batch.ids, attention_mask=batch.mask), args.repeats)
    t_hook = best_of(lambda: model.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask, fwd_hooks=hooks),
                     args.repeats)
    print(f"forward: plain HF {t_hf:.3f}s, bridge + ablation hooks {t_hook:.3f}s -> ratio {t_hook / t_hf:.3f} (<= 1.10)")

    def hf_generate(m):
        return m.generate(input_ids=batch.ids, attention_mask=batch.mask, max_new_tokens=n_tok,
                          min_new_tokens=n_tok, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)

    t_gen = best_of(lambda: hf_generate(plain), args.repeats)
    t_gen_hook = best_of(lambda: greedy_tokens(model, batch, n_tok, hooks, stop_at_eos=False), args.repeats)
    print(f"generate: plain HF {t_gen:.3f}s, refusal_tl + ablation hooks {t_gen_hook:.3f}s "
          f"-> ratio {t_gen_hook / t_gen:.3f} (<= 1.15)")

    baked_hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    orthogonalize_weights(baked_hf, r)
    t_baked_hf = best_of(lambda: hf_generate(baked_hf), args.repeats)
    baked = wrap_hf_model(baked_hf, AutoTokenizer.from_pretrained(folder), name="baked", device="cpu")
    t_baked = best_of(lambda: greedy_tokens(baked, batch, n_tok, stop_at_eos=False), args.repeats)
    print(f"generate, baked weights: HF generate {t_baked_hf:.3f}s -> ratio {t_baked_hf / t_gen:.3f} (<= 1.05); "
          f"refusal_tl greedy on the bridge {t_baked:.3f}s -> ratio {t_baked / t_gen:.3f}")

    def naive_extract():
        _, cache = model.bridge.run_with_cache(batch.ids, attention_mask=batch.mask)
        return torch.stack([cache[f"blocks.{l}.hook_resid_pre"][:, -5:] for l in range(model.n_layers)], 2)

    t_naive = best_of(naive_extract, args.repeats)
    t_dim = best_of(lambda: eoi_activations(model, prompts, args.batch, with_scores=False), args.repeats)
    ours = eoi_activations(model, prompts, args.batch, with_scores=False).acts
    # eoi_activations sorts by length internally; compare on the original order
    ok = torch.allclose(ours, naive_extract().float(), atol=1e-3)
    print(f"DIM extraction: naive run_with_cache {t_naive:.3f}s, eoi_activations {t_dim:.3f}s "
          f"-> {t_naive / t_dim:.2f}x faster (>= 1.5), same activations: {ok}")


if __name__ == "__main__":
    main()
