"""Cone benchmarks on the bundled model, contenders interleaved in one run (median ratio and spread).

``--part step``: one optimizer step of a 2-dimensional cone with 2 fresh samples per example
(the cpu profile), on ``--examples`` training pairs:

- **straightforward** (:func:`refusal_tl.cone.step.reference_cone_step`): every direction of
  every example through the straightforward RDO step (three full forwards with full
  logits, the clean retain forward recomputed per direction);
- **efficient** (:func:`refusal_tl.cone.step.cone_step_losses`) with the RDO caches warm:
  clean retain logits and the residual at l_add once per example for all directions,
  window-only unembedding, micro-batches with one direction per row.
  Target: >= 1.8x at identical losses.

``--part eval``: M sampled cone directions on P harmful prompts, greedy 32 tokens, ablation:

- **one at a time**: one batched generate loop per direction (``generate`` with that
  direction's hooks, batch 16, the shared system prompt prefilled once per batch);
- **batched**: (direction, prompt) pairs as batch rows, one direction per row
  (:func:`refusal_tl.steer.multi.multi_generate`, ``--batch`` rows).
  Target: >= 3x at identical completions.

Needs a run with DIM (and RDO targets): ``refusal-tl dim --out runs/cpu`` then ``refusal-tl rdo --run runs/cpu``.

Usage:  python benchmarks/bench_cone.py [--run runs/cpu] [--part step|eval|both] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from timing import Results, interleaved, median

from refusal_tl import data, profiles
from refusal_tl.cone import ConeConfig, grow
from refusal_tl.cone.step import cone_step_losses, reference_cone_step
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import load_model
from refusal_tl.rdo import training_pairs
from refusal_tl.rdo.step import Prepared
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import intervention_hooks
from refusal_tl.steer.multi import multi_generate
from refusal_tl.steer.windows import pair_lengths


def bench_step(res: Results, model, dim: RefusalDirection, run: Path, examples: int, rounds: int) -> None:
    cpu = profiles.profile("cpu", "cone")
    pairs, _ = training_pairs(model, dim, n=None, cache_dir=run / "rdo", refusal_targets=cpu["refusal_targets"])
    pairs = pairs[:examples]
    group = list(range(len(pairs)))
    cfg = ConeConfig(n_samples=cpu["n_samples"], accumulation=examples, micro_batch=examples,
                     retain_kl=cpu["retain_kl"])
    rows = grow(None, 2, model.d_model, 0)
    alpha, layer, lengths = dim.norm, dim.layer, pair_lengths(model, pairs)
    print(f"cone step: dim 2, {cfg.n_samples} samples per example, {len(pairs)} pairs, l_add = {layer}, "
          f"{torch.get_num_threads()} threads")
    out = {}

    def run_step(name: str, prep: Prepared | None = None):
        p = torch.nn.Parameter(rows.clone())
        if prep is not None:
            losses = cone_step_losses(model, p, alpha, layer, pairs, group, prep, lengths, cfg, step=0)
        else:
            losses = reference_cone_step(model, p, alpha, layer, pairs, group, cfg, step=0)
        out[name] = (losses, p.grad.clone())

    prep = Prepared(model, pairs, layer, keep=True)
    t0 = time.perf_counter()
    run_step("efficient", prep)  # cold: builds the caches
    t_cold = time.perf_counter() - t0
    t = interleaved({"straightforward": lambda: run_step("straightforward"),
                     "efficient": lambda: run_step("efficient", prep)}, rounds, warmup=False)
    (eff, g_eff), (ref, g_ref) = out["efficient"], out["straightforward"]
    worst = max(abs(eff[k] - ref[k]) / abs(ref[k]) for k in eff)
    cos = float(torch.nn.functional.cosine_similarity(g_eff.flatten(), g_ref.flatten(), dim=0))
    print(f"losses efficient {eff}\n       straightforward {ref}")
    print(f"max relative loss difference {worst:.2e} (target <= 1e-4); gradient cosine {cos:.6f}")
    print(f"straightforward step {median(t['straightforward']):7.1f} s; efficient cold {t_cold:.1f} s "
          f"({median(t['straightforward']) / t_cold:.2f}x), warm {median(t['efficient']):.1f} s")
    res.ratio("cone step (caches built)", t, "straightforward", "efficient", ">= 1.8",
              f"losses agree to {worst:.1e} relative, gradient cosine {cos:.6f}; cold step {t_cold:.1f} s")


def bench_eval(res: Results, model, dim: RefusalDirection, n_dirs: int, n_prompts: int, batch: int,
               rounds: int) -> None:
    basis = grow(dim.vector[None].float(), 3, model.d_model, 0)
    cone = RefusalCone(basis, dim.layer, dim.norm, model.name, model.weights_sha)
    dirs = cone.alpha * cone.sample(n_dirs, 42)
    prompts = data.bundled("harmful", "val")[:n_prompts]
    print(f"cone samples: {n_dirs} directions x {n_prompts} prompts, 32 new tokens, ablation; batched rows {batch}")
    out = {}

    def one_at_a_time():
        out["single"] = [generate(model, prompts, 32, intervention_hooks("ablate", v, model.n_layers), 16, desc=None)
                         for v in dirs]

    def batched():
        out["batched"] = multi_generate(model, prompts, dirs, "ablate", max_new_tokens=32, batch_size=batch, desc=None)

    t = interleaved({"one at a time": one_at_a_time, "batched": batched}, rounds, warmup=False)
    same = sum(a == b for x, y in zip(out["single"], out["batched"]) for a, b in zip(x, y))
    print(f"identical completions {same}/{n_dirs * n_prompts}")
    print(f"one at a time {median(t['one at a time']):.1f} s, batched {median(t['batched']):.1f} s")
    res.ratio(f"{n_dirs} cone samples x {n_prompts} prompts: one generate loop per direction vs batched rows", t,
              "one at a time", "batched", ">= 3", f"identical completions {same}/{n_dirs * n_prompts}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/cpu"), help="run directory with dim/ (and rdo/ targets)")
    p.add_argument("--part", default="both", choices=["step", "eval", "both"])
    p.add_argument("--examples", type=int, default=profiles.profile("cpu", "cone")["accumulation"])
    p.add_argument("--directions", type=int, default=8)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--batch", type=int, default=128, help="rows per batched forward")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    model = load_model("bundled")
    dim = RefusalDirection.load(args.run / "dim" / "direction.safetensors")
    res = Results("cone", "Cones: the efficient step, and many sampled directions in one batch",
                  f"bundled model in {model.dtype_name}, {args.rounds} interleaved rounds")
    if args.part in ("step", "both"):
        bench_step(res, model, dim, args.run, args.examples, args.rounds)
    if args.part in ("eval", "both"):
        with torch.no_grad():
            bench_eval(res, model, dim, args.directions, args.prompts, args.batch, args.rounds)
    res.write()


if __name__ == "__main__":
    main()
