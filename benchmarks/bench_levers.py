"""Speed levers other than bfloat16, each measured before and after on the bundled model (bf16 via ``auto``).

- **reused answers**: the report's cone and RepInd sections need the no-intervention, DIM and RDO
  answers of prompts that the results table (Table 5) already answered. Before, each section
  generated them again (a fresh answer book per section); now one :class:`~refusal_tl.pipeline.cache.Answers`
  serves the whole evaluation (:func:`refusal_tl.pipeline.stages.evaluate_run`). The calls are the
  sections' own at the ``--profile`` evaluation sizes (greedy, the profile's answer length).
- **induce scores resumed per vector**: the cone filters' induce scores of the basis and 16 fixed
  samples on 12 harmless validation prompts, as batched full forwards with one direction per row
  (before) against each vector resumed from the clean run at the cone's layer (now,
  :meth:`refusal_tl.eval.scorer.Scorer.induce_many`). Scores must agree.
- **SDPA attention**: TransformerLens' bridge computes attention itself (explicit matmuls, a
  float32 softmax) so that its attention hooks fire; nothing in this library hooks inside
  attention. The ceiling of what PyTorch's fused ``scaled_dot_product_attention`` could give is
  measured on the same weights in plain transformers, eager against SDPA attention: last-position
  logits of 32 prompts and greedy decoding of 16 prompts.
- **torch.compile**: the same plain-transformers forward of 32 prompts, eager against
  ``torch.compile`` (compile time reported separately; the first compiled call is not timed).

Needs a run with ``dim``, ``rdo`` and ``cone-2`` (``make demo``).
Writes ``benchmarks/results/levers.json``.

Usage:  python benchmarks/bench_levers.py [--run runs/demo] [--profile cpu] [--rounds 2] [--skip compile]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from timing import Results, interleaved

from refusal_tl import data
from refusal_tl.cone.select import fixed_samples
from refusal_tl.eval.scorer import Scorer
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.pipeline.cache import Answers
from refusal_tl.profiles import EvalSizes
from refusal_tl.steer.multi import multi_refusal_scores


def section_calls(model: RefusalModel, s: EvalSizes, dim: RefusalDirection, rdo: RefusalDirection):
    """The answers the cone and RepInd sections ask for that the results table already has."""
    ch, cs = data.bundled("harmful", "test", s.n_cone_eval), data.bundled("harmless", "test", s.n_cone_eval)
    harmful = data.bundled("harmful", "test", s.n_eval)
    refs = {"DIM": dim, "RDO": rdo}
    calls = [(ch, None, "none"), *[(ch, d, "ablate") for d in refs.values()],  # cone_ablate
             (cs, None, "none"), *[(cs, d, "add") for d in refs.values()],  # cone_induce
             (harmful, None, "none"), (harmful, dim, "ablate"), (harmful, rdo, "ablate")]  # repind
    return calls


def answers_rows(res: Results, model: RefusalModel, run: Path, profile: str, rounds: int) -> None:
    s = EvalSizes.of(profile)
    dim, rdo = (RefusalDirection.load(run / n / "direction.safetensors") for n in ("dim", "rdo"))
    harmful, harmless = data.bundled("harmful", "test", s.n_eval), data.bundled("harmless", "test", s.n_eval)
    shared = Answers(model, s.max_new_tokens)
    for d in (None, dim, rdo):  # what the results table generates (Table 5's answers)
        shared.rate(harmful, d, "ablate" if d is not None else "none")
        shared.rate(harmless, d, "add" if d is not None else "none")
    calls = section_calls(model, s, dim, rdo)

    def fresh():
        book = Answers(model, s.max_new_tokens)
        return [book.rate(p, d, k) for p, d, k in calls]

    def reused():
        return [shared.rate(p, d, k) for p, d, k in calls]

    # in bf16 a greedy answer can depend on the batch it was decoded in (padding), so a regenerated
    # rate may differ slightly from the results table's; the reused one is the table's own answer
    gaps = [abs(a - b) for a, b in zip(fresh(), reused())]
    t = interleaved({"fresh per section": fresh, "reused": reused}, rounds, warmup=False)
    n = sum(len(p) for p, _, _ in calls)
    res.ratio("cone and RepInd sections' baseline and DIM / RDO answers", t, "fresh per section", "reused",
              note=f"{n} answers of {s.max_new_tokens} tokens at the {profile} sizes; {sum(g > 0 for g in gaps)} of "
                   f"{len(gaps)} rates differ when regenerated in other batches (largest {max(gaps):.3f})")


def induce_rows(res: Results, model: RefusalModel, run: Path, rounds: int) -> None:
    cone = RefusalCone.load(run / "cone-2" / "basis.safetensors")
    harmful, harmless = data.bundled("harmful", "val", 12), data.bundled("harmless", "val", 12)
    sc = Scorer(model, harmful, harmless, 16)
    every = torch.cat([cone.alpha * cone.basis, cone.alpha * fixed_samples(cone.basis, 16)]).to(model.device)
    before = lambda: multi_refusal_scores(model, harmless, every, "add", cone.layer, batch_size=32).mean(1)
    after = lambda: sc.induce_many(every, cone.layer)
    gap = float((before() - after()).abs().max())
    t = interleaved({"batched full forwards": before, "resumed per vector": after}, rounds)
    res.ratio("cone filters' induce scores (2 basis vectors + 16 samples, 12 prompts)", t,
              "batched full forwards", "resumed per vector", note=f"largest score gap {gap:.1e}")


def attention_rows(res: Results, model: RefusalModel, rounds: int) -> None:
    hf, cfg = model.hf_model, model.hf_model.config
    prompts = data.bundled("harmful", "val", 32)
    enc = model.chat.tokenize(prompts, share_prefix=False).to(model.device)
    ids, mask = enc.ids, enc.mask
    small_ids, small_mask = ids[:16], mask[:16]

    def run(impl, fn):
        def call():
            old, cfg._attn_implementation = cfg._attn_implementation, impl
            try:
                return fn()
            finally:
                cfg._attn_implementation = old
        return call

    fwd = lambda: hf(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits
    gen = lambda: hf.generate(input_ids=small_ids, attention_mask=small_mask, max_new_tokens=16, do_sample=False,
                              min_new_tokens=16, pad_token_id=model.tokenizer.pad_token_id)
    gap = float((run("eager", fwd)().float() - run("sdpa", fwd)().float()).abs().max())
    t = interleaved({"eager": run("eager", fwd), "sdpa": run("sdpa", fwd)}, rounds)
    res.ratio("plain transformers forward, 32 prompts: eager / SDPA attention", t, "eager", "sdpa",
              note=f"largest logit gap {gap:.2f}")
    t = interleaved({"eager": run("eager", gen), "sdpa": run("sdpa", gen)}, rounds)
    res.ratio("plain transformers greedy decode, 16 prompts × 16 tokens: eager / SDPA", t, "eager", "sdpa")


def compile_rows(res: Results, model: RefusalModel, rounds: int) -> None:
    hf = model.hf_model
    enc = model.chat.tokenize(data.bundled("harmful", "val", 32), share_prefix=False).to(model.device)
    compiled = torch.compile(hf)
    eager = lambda: hf(input_ids=enc.ids, attention_mask=enc.mask, logits_to_keep=1).logits
    comp = lambda: compiled(input_ids=enc.ids, attention_mask=enc.mask, logits_to_keep=1).logits
    t0 = time.perf_counter()
    gap = float((comp().float() - eager().float()).abs().max())
    first = time.perf_counter() - t0
    t = interleaved({"eager": eager, "compiled": comp}, rounds)
    res.ratio("plain transformers forward, 32 prompts: eager / torch.compile", t, "eager", "compiled",
              note=f"first compiled call {first:.0f} s (compilation, once per shape); largest logit gap {gap:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"))
    p.add_argument("--profile", default="cpu")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--skip", default="", help="comma-separated: answers, induce, attention, compile")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model, skip = load_model("bundled"), set(filter(None, args.skip.split(",")))
    res = Results("levers", f"Levers besides bf16 ({model.dtype_name}, bundled model)",
                  f"{args.rounds} interleaved rounds, {torch.get_num_threads()} threads, run {args.run}; "
                  "ratio = seconds before / seconds after")
    if "answers" not in skip:
        answers_rows(res, model, args.run, args.profile, args.rounds)
    if "induce" not in skip:
        induce_rows(res, model, args.run, args.rounds + 1)
    if "attention" not in skip:
        attention_rows(res, model, args.rounds + 1)
    if "compile" not in skip:
        compile_rows(res, model, args.rounds + 1)
    res.write()


if __name__ == "__main__":
    main()
