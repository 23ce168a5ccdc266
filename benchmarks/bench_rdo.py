"""RDO step benchmark on the bundled model: the efficient step vs the straightforward one.

Same batch (one optimizer step of ``--examples`` training pairs), contenders interleaved
(straightforward, efficient, straightforward, efficient, …) and the median per-round ratio
reported with its spread:

- **straightforward** (:func:`refusal_tl.rdo.step.reference_step`): micro-batch 1, three full
  forwards with full-vocabulary logits per example, plus the clean retain forward;
- **efficient** (:func:`refusal_tl.rdo.step.step_losses`) with its once-per-prompt caches
  built (*warm*, as in every epoch after the first): clean retain logits reused, the
  addition loss restarted from the residual cached at l_add, unembedding only over the
  target window, examples sorted by length and batched ``--micro-batch`` at a time.
  The *cold* step (caches built inside the step, as in a 1-epoch run) is timed once.

Prints the losses of both (target: relative difference <= 1e-4), the gradient cosine, and
the speed-up (target >= 1.8x). Needs a DIM direction: ``refusal-tl dim --out runs/cpu``.

Usage:  python benchmarks/bench_rdo.py [--run runs/cpu] [--examples 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from timing import Results, interleaved, median

from refusal_tl import profiles
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import load_model
from refusal_tl.rdo import RdoConfig, training_pairs
from refusal_tl.rdo.step import Prepared, reference_step, step_losses
from refusal_tl.steer.windows import pair_lengths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/cpu"), help="run directory with dim/direction.safetensors")
    p.add_argument("--examples", type=int, default=profiles.profile("cpu", "rdo")["accumulation"],
                   help="training pairs in the step (accumulation)")
    p.add_argument("--micro-batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = load_model("bundled")
    dim = RefusalDirection.load(args.run / "dim" / "direction.safetensors")
    pairs, _ = training_pairs(model, dim, n=4 * args.examples, cache_dir=args.run / "rdo")
    pairs = pairs[: args.examples]
    group = list(range(len(pairs)))
    cfg = RdoConfig(micro_batch=args.micro_batch)
    alpha, layer = dim.norm, dim.layer
    lengths = pair_lengths(model, pairs)
    print(f"{len(pairs)} pairs, l_add = {layer}, micro-batch {cfg.micro_batch}, {torch.get_num_threads()} threads")
    out = {}

    def run(name: str, prep: Prepared | None = None):
        r = torch.nn.Parameter(torch.nn.functional.normalize(
            torch.randn(1, model.d_model, generator=torch.Generator().manual_seed(0)), dim=-1))
        if prep is not None:
            losses = step_losses(model, r, alpha, layer, pairs, group, prep, lengths, cfg)
        else:
            losses = reference_step(model, r, alpha, layer, pairs, group, cfg)
        out[name] = (losses, r.grad.clone())

    prep = Prepared(model, pairs, layer, keep=True)
    t0 = time.perf_counter()
    run("efficient", prep)  # cold: builds the caches
    t_cold = time.perf_counter() - t0
    t = interleaved({"straightforward": lambda: run("straightforward"),
                     "efficient": lambda: run("efficient", prep)}, args.rounds, warmup=False)
    (eff, g_eff), (ref, g_ref) = out["efficient"], out["straightforward"]
    print(f"{'term':5} {'efficient':>12} {'straightforward':>16} {'rel diff':>10}")
    worst = 0.0
    for name in ("abl", "add", "ret"):
        rel = abs(eff[name] - ref[name]) / abs(ref[name])
        worst = max(worst, rel)
        print(f"{name:5} {eff[name]:12.6f} {ref[name]:16.6f} {rel:10.2e}")
    cos = float(torch.nn.functional.cosine_similarity(g_eff.flatten(), g_ref.flatten(), dim=0))
    print(f"max relative loss difference {worst:.2e} (target <= 1e-4); gradient cosine {cos:.6f}")
    print(f"efficient step, cold {t_cold:7.1f} s  -> {median(t['straightforward']) / t_cold:.2f}x faster "
          "(caches built in the step)")
    res = Results("rdo", "The RDO step: efficient against straightforward",
                  f"one optimizer step of {len(pairs)} pairs, micro-batch {cfg.micro_batch}, {model.dtype_name}, "
                  f"{args.rounds} interleaved rounds")
    res.ratio("RDO step (caches built)", t, "straightforward", "efficient", ">= 1.8",
              f"losses agree to {worst:.1e} relative, gradient cosine {cos:.6f}; cold step {t_cold:.1f} s")
    res.write()


if __name__ == "__main__":
    main()
