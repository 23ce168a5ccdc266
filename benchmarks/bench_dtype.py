"""bfloat16 against float32 on the bundled model, through the library's own code paths.

Both dtypes are loaded side by side (the same weights, rounded to bf16 for the second) and
every workload runs once per dtype per round, the order rotating (``timing.interleaved``); the
median per-round ratio float32 / bf16 is the bf16 speed-up:

- **forward**: last-position logits of 32 prompts (``last_logits``, no hooks);
- **forward + backward**: 8 prompts with a float32 direction ablated at every layer, the
  gradient of the last-position log-sum-exp reaching the direction (what RDO training does);
- **decode at batch 1, 16, 64**: greedy generation of ``--new-tokens`` tokens, prefill included;
- **one DIM selection batch**: bypass, KL and induce scores of one candidate on 16 harmful and
  16 harmless prompts (:class:`refusal_tl.eval.scorer.Scorer`);
- **one RDO step**: Algorithm 1's step on 16 pairs with its per-prompt caches built;
- **one GCG step**: search width 32, top-k 128 (the cpu profile's settings).

The forward row also records the last-token KL(float32 ‖ bf16) and how often the top tokens agree.

Targets: forward ≥ 1.7×, forward + backward ≥ 1.7×, decode at batch 16 ≥ 1.5× (on a CPU with
native bf16: AVX512-BF16 or AMX; the JSON records whether this machine has it).
Writes ``benchmarks/results/dtype.json``.

Usage:  python benchmarks/bench_dtype.py [--rounds 3] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from timing import Results, interleaved

from refusal_tl import data
from refusal_tl.eval.scorer import Scorer
from refusal_tl.gcg import GcgConfig, SuffixLoss, make_problem, run_attack
from refusal_tl.gcg.tokens import allowed_tokens
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.rdo import RdoConfig
from refusal_tl.rdo.step import Prepared, step_losses
from refusal_tl.steer.forward import last_logits, window_logits
from refusal_tl.steer.generation import greedy_tokens
from refusal_tl.steer.hooks import ablation_hooks
from refusal_tl.steer.windows import Example, TrainingPair, pair_lengths

DTYPES = ("float32", "bfloat16")
# synthetic targets of the length RDO trains on (about 30 tokens): the timing does not depend on their content
ANSWER = " Sure, here is a step-by-step guide. First, gather the materials you need and read the instructions."
REFUSAL = " I'm sorry, but I can't assist with that"
RETAIN = " Here is a short answer to your question, with an example and a few details that explain it."


def direction(model: RefusalModel, seed: int = 0) -> torch.Tensor:
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed))
    return 6.0 * v / v.norm()


def workloads(model: RefusalModel, new_tokens: int) -> dict[str, Callable[[], object]]:
    """One closure per workload for ``model`` (inputs and caches built here, not timed)."""
    harmful, harmless = data.bundled("harmful", "val", 32), data.bundled("harmless", "val", 32)
    fwd = model.chat.tokenize(harmful, share_prefix=False).to(model.device)
    small = model.chat.tokenize(harmful[:8], share_prefix=False).to(model.device)
    decode = {b: model.chat.tokenize(harmful[:b] if b <= 32 else harmful + harmless[:b - 32]).to(model.device)
              for b in (1, 16, 64)}
    v = direction(model).to(model.device)
    scorer = Scorer(model, harmful[:16], harmless[:16], batch_size=16)
    pairs = [TrainingPair(Example(h, ANSWER), Example(s, REFUSAL), Example(s, RETAIN))
             for h, s in zip(harmful[:16], harmless[:16])]
    prep, lengths, cfg = Prepared(model, pairs, 12), pair_lengths(model, pairs), RdoConfig(micro_batch=16)
    prep.ensure(list(range(16)))
    gcg = GcgConfig.from_profile("cpu", steps=1, aux_weight=0.0)
    gcg_loss = SuffixLoss(model, make_problem(model, harmful[0], "Sure, here is how to"), None, 0, 0.0)
    allowed = allowed_tokens(model.tokenizer, model.hf_model.get_input_embeddings().weight.shape[0])

    def forward_backward():
        r = torch.nn.Parameter(v.float().clone())
        with torch.enable_grad():
            logits = window_logits(model, small, 1, ablation_hooks(r, model.n_layers))
            logits[:, -1].float().logsumexp(-1).sum().backward()
        assert r.grad is not None and r.grad.dtype == torch.float32

    def rdo_step():
        r = torch.nn.Parameter(torch.nn.functional.normalize(v.float(), dim=0)[None].clone())
        with torch.enable_grad():
            step_losses(model, r, 6.0, 12, pairs, list(range(16)), prep, lengths, cfg)

    def selection():
        scorer.bypass(v), scorer.kl(v), scorer.induce(v, 12)

    jobs = {"forward": lambda: last_logits(model, fwd), "forward + backward": forward_backward}
    jobs |= {f"decode, batch {b}": (lambda b=b: greedy_tokens(model, decode[b], new_tokens, stop_at_eos=False))
             for b in decode}
    jobs |= {"one DIM selection batch": selection, "one RDO step": rdo_step,
             "one GCG step": lambda: run_attack(gcg_loss, model.tokenizer, allowed, gcg, {"bench": 1}, progress=False)}
    return jobs


TARGETS = {"forward": ">= 1.7", "forward + backward": ">= 1.7", "decode, batch 16": ">= 1.5"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--only", default=None, help="comma-separated workload names (default: all)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    models = {dt: load_model("bundled", dtype=dt) for dt in DTYPES}
    jobs = {dt: workloads(m, args.new_tokens) for dt, m in models.items()}
    names = [n for n in jobs["float32"] if args.only is None or n in args.only.split(",")]
    res = Results("dtype", "bfloat16 speed-up over float32 (bundled model, library code paths)",
                  f"{args.rounds} interleaved rounds, {args.new_tokens} new tokens per decode, "
                  f"{torch.get_num_threads()} threads; ratio = float32 seconds / bfloat16 seconds")
    for name in names:
        t = interleaved({dt: jobs[dt][name] for dt in DTYPES}, args.rounds)
        note = agreement(models) if name == "forward" else ""
        res.ratio(name, t, "float32", "bfloat16", TARGETS.get(name), note=note)
    res.write()


def agreement(models: dict[str, RefusalModel]) -> str:
    """Last-token KL(float32 ‖ bf16) and top-token agreement on the forward workload's 32 prompts."""
    prompts = data.bundled("harmful", "val", 32)
    logp = {dt: last_logits(m, m.chat.tokenize(prompts).to(m.device)).double().log_softmax(-1)
            for dt, m in models.items()}
    kl = (logp["float32"].exp() * (logp["float32"] - logp["bfloat16"])).sum(-1)
    same = int((logp["float32"].argmax(-1) == logp["bfloat16"].argmax(-1)).sum())
    return (f"last-token KL(float32 ‖ bf16) mean {kl.mean():.4f}, max {kl.max():.4f}; "
            f"top token equal on {same} of {len(prompts)}")


if __name__ == "__main__":
    main()
