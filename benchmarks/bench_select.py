"""Direction selection's induce score on the bundled model: full forward vs resumed at the layer.

The induce score adds +v at ``resid_pre`` of layer l, so blocks 0 … l−1 equal the clean
model's; ``Scorer.induce`` resumes at block l from the clean harmless run kept at
construction (refusal_tl/steer/resume.py). This prints, over interleaved rounds, the time of
the induce scores of one candidate position at every ``--stride``-th layer of the selection
grid (layers below the 80 % cutoff), the old full forward against the resumed one, the
median ratio and whether the scores are identical.

Usage:  python benchmarks/bench_select.py [--run RUN] [--rounds 3] [--stride 3]
        (``--run``: a DIM run directory, whose candidates are scored; random vectors otherwise)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from timing import Results, interleaved

from refusal_tl import data, profiles
from refusal_tl.dim.select import SelectionConfig
from refusal_tl.eval.scorer import Scorer
from refusal_tl.io import load_tensors
from refusal_tl.model import load_model
from refusal_tl.steer.forward import refusal_scores
from refusal_tl.steer.hooks import addition_hooks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="a DIM run directory (its candidates at position -1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stride", type=int, default=3)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    cfg = profiles.profile("cpu", "dim")
    model = load_model("bundled")
    harmless = data.bundled("harmless", "val", cfg.get("n_val_harmless") or cfg["n_val"])
    bs = cfg["batch_size"]
    cutoff = int(model.n_layers * (1 - SelectionConfig().prune_layer_frac))
    layers = list(range(0, cutoff, args.stride))
    if args.run:
        tensors, _ = load_tensors(args.run / "dim" / "candidates.safetensors", "DIM candidate grid")
        vs = {l: tensors["vectors"][-1, l] for l in layers}  # the last post-instruction position
    else:
        vs = {l: 6.0 * torch.nn.functional.normalize(torch.randn(model.d_model), dim=0) for l in layers}
    scorer = Scorer(model, [], harmless, bs)
    full = lambda: [float(refusal_scores(model, harmless, addition_hooks(vs[l], l), bs).mean()) for l in layers]
    resumed = lambda: [scorer.induce(vs[l], l) for l in layers]
    res = Results("select", "Selection's induce score resumed at the addition's layer",
                  f"{len(harmless)} harmless val prompts, batch {bs}, layers {layers}, {model.dtype_name}, "
                  f"{args.rounds} interleaved rounds")
    t = interleaved({"full": full, "resumed": resumed}, args.rounds)
    same = full() == resumed()
    res.ratio(f"induce scores at {len(layers)} layers: full forwards vs resumed", t, "full", "resumed",
              note=f"identical scores: {same}")
    res.write()


if __name__ == "__main__":
    main()
