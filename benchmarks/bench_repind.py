"""RepInd step benchmark on the bundled model, contenders interleaved in one run (median ratio and spread).

One optimizer step of the RepInd loss (RDO terms + λ_ind·L_ind against V = {DIM, one more
direction}, the cpu profile's settings) on ``--examples`` training pairs:

- **straightforward** (:func:`refusal_tl.repind.step.reference_repind_step`): the straightforward
  RDO step (three full forwards with full logits per example, the clean retain forward
  recomputed) plus, per example and v ∈ V, three forwards of the harmful prompt (clean,
  r ablated, v ablated), as the official code does;
- **efficient** (:func:`refusal_tl.repind.step.repind_step_losses`) with its caches warm: the
  RDO step's caches, the r-independent traces (clean, each v ablated) once per prompt, and
  x̃_abl(r) read from the RDO ablation forward (no extra forward for L_ind).
  Target: >= 2x at identical loss and gradient.

Needs a run with DIM and RDO targets: ``refusal-tl dim --out runs/cpu`` then ``refusal-tl rdo --run runs/cpu``.

Usage:  python benchmarks/bench_repind.py [--run runs/cpu] [--examples 8] [--rounds 2]
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
from refusal_tl.rdo import training_pairs
from refusal_tl.rdo.step import Prepared
from refusal_tl.repind import RepIndRunConfig
from refusal_tl.repind.step import TraceCache, reference_repind_step, repind_step_losses
from refusal_tl.steer.windows import pair_lengths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/cpu"), help="run directory with dim/ and rdo/ targets")
    p.add_argument("--examples", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    model = load_model("bundled")
    dim = RefusalDirection.load(args.run / "dim" / "direction.safetensors")
    run_cfg = RepIndRunConfig.from_profile("cpu")
    pairs, _ = training_pairs(model, dim, n=None, cache_dir=args.run / "rdo", refusal_targets=run_cfg.refusal_targets)
    pairs = pairs[:args.examples]
    group = list(range(len(pairs)))
    from dataclasses import replace

    cfg = replace(run_cfg.repind, accumulation=len(pairs), micro_batch=len(pairs))
    V = torch.stack([dim.unit.float(), torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))])
    V[1] /= V[1].norm()
    alpha, layer, lengths = dim.norm, dim.layer, pair_lengths(model, pairs)
    layers = cfg.ind_layers(model.n_layers)
    print(f"RepInd step: |V| = {len(V)}, {len(layers)} layers, {len(pairs)} pairs, l_add = {layer}, "
          f"{torch.get_num_threads()} threads, {profiles.describe('cpu').split(';')[3].strip()}")
    r0 = torch.randn(1, model.d_model, generator=torch.Generator().manual_seed(0))
    r0 /= r0.norm()
    out = {}

    def run_step(name: str, prep=None, cache=None):
        param = torch.nn.Parameter(r0.clone())
        if prep is not None:
            losses = repind_step_losses(model, param, alpha, layer, pairs, group, prep, cache, lengths, cfg)
        else:
            losses = reference_repind_step(model, param, alpha, layer, pairs, group, V, cfg)
        out[name] = (losses, param.grad.clone())

    prep, cache = Prepared(model, pairs, layer, keep=True), TraceCache(model, pairs, V, layers)
    t0 = time.perf_counter()
    run_step("efficient", prep, cache)  # cold: builds the caches
    t_cold = time.perf_counter() - t0
    t = interleaved({"straightforward": lambda: run_step("straightforward"),
                     "efficient": lambda: run_step("efficient", prep, cache)}, args.rounds, warmup=False)
    (eff, g_eff), (ref, g_ref) = out["efficient"], out["straightforward"]
    worst = max(abs(eff[k] - ref[k]) / abs(ref[k]) for k in eff)
    cos = float(torch.nn.functional.cosine_similarity(g_eff.flatten(), g_ref.flatten(), dim=0))
    rel = float((g_eff - g_ref).norm() / g_ref.norm())
    print(f"losses efficient {eff}\n       straightforward {ref}")
    print(f"max relative loss difference {worst:.2e} (target <= 1e-4); gradient cosine {cos:.7f}, "
          f"relative difference {rel:.2e}")
    print(f"straightforward step {median(t['straightforward']):7.1f} s; efficient cold {t_cold:.1f} s "
          f"({median(t['straightforward']) / t_cold:.2f}x), warm {median(t['efficient']):.1f} s")
    res = Results("repind", "The RepInd step: efficient against straightforward",
                  f"|V| = {len(V)}, {len(layers)} traced layers, {len(pairs)} pairs, {model.dtype_name}, "
                  f"{args.rounds} interleaved rounds")
    res.ratio("RepInd step (caches built)", t, "straightforward", "efficient", ">= 2",
              f"losses agree to {worst:.1e} relative, gradient cosine {cos:.7f}; cold step {t_cold:.1f} s")
    res.write()


if __name__ == "__main__":
    main()
