"""Decoding with finished rows dropped from the batch, against keeping them, on the bundled model.

A batch used to decode every row until the *last* row ended, so a refusal that ends after ten
tokens kept costing a row of the forward for the remaining steps. Now a row that produces an
end-of-turn token leaves the batch and its KV-cache rows are dropped
(:func:`refusal_tl.steer.generation.decode_steps`). Contenders, interleaved in one run:

- **keep** (``drop_finished=False``): the batch keeps its shape until every row has ended;
- **drop** (the default): finished rows leave the batch.

Scenarios (greedy, 32 new tokens, the report's kinds of generation):

- ``induce``: ``--directions`` samples of a trained cone (``--cone``, default ``RUN/cone-2``;
  without one, the 2-dimensional cone spanned by DIM and RDO at DIM's layer, α = ‖DIM‖) added on
  ``--prompts`` harmless test prompts, one direction per row (64 rows per batch): the report's
  cone-induce evaluation, where a trained cone's samples make the model refuse;
- ``ablate``: the same samples ablated on harmful test prompts (most answers run to the limit);
- ``plain``: no intervention on ``2 × --prompts`` harmful test prompts, batches of 16.

Completions must be identical. Needs a run with a cone (``refusal-tl cone``), or at least DIM and RDO
(``refusal-tl dim --out runs/cpu``, then ``refusal-tl rdo --run runs/cpu``).

Usage:  python benchmarks/bench_decode.py [--run runs/cpu] [--cone PATH] [--scenarios induce,ablate,plain]
        [--directions 16] [--prompts 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from timing import Results, interleaved

from refusal_tl import data
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import load_model
from refusal_tl.steer.forward import batches
from refusal_tl.steer.generation import greedy_tokens
from refusal_tl.steer.hooks import orthonormal_basis
from refusal_tl.steer.metrics import is_refusal
from refusal_tl.steer.multi import multi_generate


def load_cone(model, run: Path, path: Path | None) -> RefusalCone:
    """``path``, else ``RUN/cone-2``, else the span of DIM and RDO at DIM's layer with α = ‖DIM‖."""
    path = path or run / "cone-2" / "basis.safetensors"
    if path.is_file():
        return RefusalCone.load(path)
    dim, rdo = (RefusalDirection.load(run / name / "direction.safetensors") for name in ("dim", "rdo"))
    basis = orthonormal_basis(torch.stack([dim.vector, rdo.vector]).float())
    return RefusalCone(basis, dim.layer, dim.norm, model.name, model.weights_sha)


def scenarios(model, cone: RefusalCone, n_dirs: int, n_prompts: int) -> dict:
    """name -> function(drop_finished) returning the completions."""
    dirs = cone.alpha * cone.sample(n_dirs, 42)
    harmless, harmful = data.bundled("harmless", "test", n_prompts), data.bundled("harmful", "test", 2 * n_prompts)
    return {
        "induce": lambda drop: multi_generate(model, harmless, dirs, "add", cone.layer, max_new_tokens=32,
                                              desc=None, drop_finished=drop),
        "ablate": lambda drop: multi_generate(model, harmful[:n_prompts], dirs, "ablate", max_new_tokens=32,
                                              desc=None, drop_finished=drop),
        "plain": lambda drop: _plain(model, harmful, drop),
    }


def _plain(model, prompts: list[str], drop: bool) -> list[list[int]]:
    """Token ids of every prompt, batches of 16 (as :func:`refusal_tl.steer.generation.generate_ids`)."""
    return [greedy_tokens(model, b, 32, drop_finished=drop).tolist() for _, b in batches(model, prompts, 16)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/cpu"), help="run directory with dim/ and rdo/")
    p.add_argument("--cone", type=Path, default=None, help="a cone's basis.safetensors (default RUN/cone-2)")
    p.add_argument("--scenarios", default="induce,ablate,plain")
    p.add_argument("--directions", type=int, default=16)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    model = load_model("bundled")
    cone = load_cone(model, args.run, args.cone)
    print(f"{args.directions} samples of a {cone.basis.shape[0]}-dimensional cone (layer {cone.layer}, "
          f"α {cone.alpha:.2f}) x {args.prompts} prompts; 32 new tokens; {torch.get_num_threads()} threads")
    res = Results("decode", "Finished answers leave the decode batch",
                  f"{args.directions} samples of a {cone.basis.shape[0]}-dimensional cone x {args.prompts} prompts, "
                  f"32 new tokens, {model.dtype_name}, {args.rounds} interleaved rounds")
    with torch.no_grad():
        for name, fn in scenarios(model, cone, args.directions, args.prompts).items():
            if name in args.scenarios.split(","):
                bench(res, name, fn, args.rounds)
    res.write()


def bench(res: Results, name: str, fn, rounds: int) -> None:
    out = {}
    runs = {k: (lambda k=k: out.__setitem__(k, fn(k == "drop"))) for k in ("keep", "drop")}
    t = interleaved(runs, rounds, warmup=False)
    rows = [c for row in out["drop"] for c in row]
    share = f"; {sum(map(is_refusal, rows))}/{len(rows)} refusals" if isinstance(rows[0], str) else ""
    res.ratio(name, t, "keep", "drop", note=f"identical completions: {out['keep'] == out['drop']}{share}")


if __name__ == "__main__":
    main()
