"""RDO step benchmark on the bundled model: the efficient step vs the straightforward one.

Same batch (one optimizer step of ``--examples`` training pairs), measured in one run:

- **straightforward** (:func:`refusal_tl.rdo.reference_step`): micro-batch 1, three full
  forwards with full-vocabulary logits per example, plus the clean retain forward;
- **efficient** (:func:`refusal_tl.rdo.step_losses`): clean retain logits once per prompt,
  the addition loss restarted from the residual cached at l_add, unembedding only over the
  target window, examples sorted by length and batched ``--micro-batch`` at a time.
  Timed twice: *cold* (the once-per-prompt caches are built inside the step, as in a
  1-epoch run) and *warm* (caches reused, as in later epochs).

Prints the losses of both (target: relative difference <= 1e-4), the gradient cosine, and
the speed-ups (target >= 1.8x). Needs a DIM direction: ``refusal-tl dim --out runs/cpu``.

Usage:  python benchmarks/bench_rdo.py [--run runs/cpu] [--examples 16] [--micro-batch 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from refusal_tl.direction import RefusalDirection
from refusal_tl.model import load_model
from refusal_tl.rdo import Prepared, RdoConfig, pair_lengths, reference_step, step_losses
from refusal_tl.rdo_pipeline import training_pairs


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/cpu"), help="run directory with dim/direction.safetensors")
    p.add_argument("--examples", type=int, default=16, help="training pairs in the step (accumulation)")
    p.add_argument("--micro-batch", type=int, default=16)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = load_model("bundled")
    dim = RefusalDirection.load(args.run / "dim" / "direction.safetensors")
    pairs, _ = training_pairs(model, dim, n=4 * args.examples, cache_dir=args.run / "rdo")
    pairs = pairs[: args.examples]
    group = list(range(len(pairs)))
    cfg = RdoConfig(micro_batch=args.micro_batch)
    alpha, layer = dim.norm, dim.layer
    print(f"{len(pairs)} pairs, l_add = {layer}, micro-batch {cfg.micro_batch}, {torch.get_num_threads()} threads")

    def run(efficient: bool, prep: Prepared | None = None):
        r = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(model.d_model, generator=torch.Generator()
                                                                         .manual_seed(0)), dim=0))
        if efficient:
            out = step_losses(model, r, alpha, layer, pairs, group, prep, pair_lengths(model, pairs), cfg)
        else:
            out = reference_step(model, r, alpha, layer, pairs, group, cfg)
        return out, r.grad.clone()

    prep = Prepared(model, pairs, layer, keep=True)
    (eff, g_eff), t_cold = timed(lambda: run(True, prep))
    (_, _), t_warm = timed(lambda: run(True, prep))
    (ref, g_ref), t_ref = timed(lambda: run(False))
    print(f"{'term':5} {'efficient':>12} {'straightforward':>16} {'rel diff':>10}")
    worst = 0.0
    for name in ("abl", "add", "ret"):
        rel = abs(eff[name] - ref[name]) / abs(ref[name])
        worst = max(worst, rel)
        print(f"{name:5} {eff[name]:12.6f} {ref[name]:16.6f} {rel:10.2e}")
    cos = float(torch.nn.functional.cosine_similarity(g_eff, g_ref, dim=0))
    print(f"max relative loss difference {worst:.2e} (target <= 1e-4); gradient cosine {cos:.6f}")
    print(f"straightforward step {t_ref:7.1f} s")
    print(f"efficient step, cold {t_cold:7.1f} s  -> {t_ref / t_cold:.2f}x faster (caches built in the step)")
    print(f"efficient step, warm {t_warm:7.1f} s  -> {t_ref / t_warm:.2f}x faster (target >= 1.8x)")


if __name__ == "__main__":
    main()
