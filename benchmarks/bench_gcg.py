"""One GCG step, refusal_tl against nanoGCG, on the bundled model (contenders interleaved, median ratio).

Same model (the bundled Qwen, float32), prompt, target, suffix (20 × "!"), search width and
top-k; plain GCG (no auxiliary term: nanoGCG has none). Each contender runs one step from the
same initial suffix:

- **nanoGCG** 0.3.0 (``GCG.run`` with ``num_steps=1``: one forward for the initial buffer,
  the token gradient, ``search_width`` candidates, their losses with full-sequence logits);
- **refusal_tl** (:func:`refusal_tl.gcg.search.run_attack` with ``steps=1``: the token
  gradient, candidates, their losses from the prefilled prompt with target-only logits).

nanoGCG pins ``transformers<=4.47.1``; TransformerLens 4 needs a newer one, so install it
beside the project without its dependencies: ``pip install --no-deps nanogcg==0.3.0``. If its
prefix cache fails under the installed transformers, it is timed without (said in the output).

Usage:  python benchmarks/bench_gcg.py [--width 64] [--topk 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging

import torch
from timing import Results, interleaved, median

from refusal_tl import data
from refusal_tl.gcg import GcgConfig, SuffixLoss, make_problem, run_attack
from refusal_tl.gcg.tokens import allowed_tokens
from refusal_tl.model import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=64, help="search width (candidates per step)")
    p.add_argument("--topk", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import nanogcg

    logging.getLogger("nanogcg").setLevel(logging.WARNING)
    model = load_model("bundled")
    prompt, target = data.bundled("harmful", "test", 1)[0], "Sure, here is how to"
    cfg = GcgConfig(steps=1, search_width=args.width, topk=args.topk, eval_batch=args.width, aux_weight=0.0)
    allowed = allowed_tokens(model.tokenizer, model.hf_model.get_input_embeddings().weight.shape[0])
    ours_loss = SuffixLoss(model, make_problem(model, prompt, target), None, 0, 0.0)
    # nanoGCG appends {optim_str} to the message; our suffix follows prompt + " "
    ng_cfg = dict(num_steps=1, search_width=args.width, topk=args.topk, seed=42, optim_str_init=" ".join(["!"] * 20),
                  batch_size=args.width, verbosity="WARNING")
    out = {}

    def ours():
        out["ours"] = run_attack(ours_loss, model.tokenizer, allowed, cfg, {"bench": 1}, progress=False)

    def nano(prefix_cache: bool):
        def fn():
            conf = nanogcg.GCGConfig(**ng_cfg, use_prefix_cache=prefix_cache)
            out["nano"] = nanogcg.run(model.hf_model, model.tokenizer, prompt + " {optim_str}", target, conf)
        return fn

    cache = True
    try:
        nano(True)()
    except Exception as err:  # noqa: BLE001 - report and time the variant that runs
        print(f"nanoGCG with its prefix cache failed under this transformers ({type(err).__name__}: {err}); "
              "timing it without the cache")
        cache = False
    print(f"one GCG step: bundled model, width {args.width}, top-k {args.topk}, 20-token suffix, "
          f"{torch.get_num_threads()} threads; nanoGCG prefix cache: {cache}")
    t = interleaved({"nanoGCG": nano(cache), "refusal_tl": ours}, args.rounds)
    print(f"nanoGCG {median(t['nanoGCG']):.1f} s, refusal_tl {median(t['refusal_tl']):.1f} s per step")
    print(f"losses after the step: nanoGCG {out['nano'].best_loss:.3f}, refusal_tl {out['ours'].history[-1]['ce']:.3f}")
    res = Results("gcg", "One GCG step against nanoGCG",
                  f"bundled model in {model.dtype_name}, width {args.width}, top-k {args.topk}, 20-token suffix, "
                  f"{args.rounds} interleaved rounds; nanoGCG prefix cache: {cache}")
    res.ratio("GCG step: refusal_tl vs nanoGCG", t, "refusal_tl", "nanoGCG", "<= 1.0")
    res.write()


if __name__ == "__main__":
    main()
