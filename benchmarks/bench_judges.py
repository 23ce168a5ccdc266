"""The judges against the hand-labelled completions (tests/data/labelled_completions.jsonl).

Runs the substring judge, heretic's markers and the LLM judge (``--judge-model``, default the
bundled model itself: a weak 0.5B judge) on the 165 labelled answers and prints precision, recall,
accuracy and Cohen's κ against the labels, and κ between the judges; writes
``benchmarks/results/judges.json``.

Usage:  python benchmarks/bench_judges.py [--judge-model bundled]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from timing import machine

from refusal_tl.eval.agreement import agreement_table, judge_agreement, load_labelled
from refusal_tl.eval.judges import LLMJudge, SubstringJudge
from refusal_tl.eval.protocol import HereticJudge
from refusal_tl.io import write_json
from refusal_tl.model import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--judge-model", default="bundled")
    p.add_argument("--labels", type=Path, default=ROOT / "tests" / "data" / "labelled_completions.jsonl")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    judge_model = load_model(args.judge_model)
    judges = {"substring": SubstringJudge(), "heretic markers": HereticJudge(),
              f"LLM ({judge_model.name}, {judge_model.dtype_name})": LLMJudge(judge_model)}
    start = time.perf_counter()
    res = judge_agreement(load_labelled(args.labels), judges)
    res["seconds"], res["machine"] = time.perf_counter() - start, machine()
    print(f"{res['n']} labelled completions, {res['refusals']} refusals")
    print(agreement_table(res).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for pair in res["pairwise"]:
        print(f"κ {pair['a']} vs {pair['b']}: {pair['kappa']:.3f}")
    write_json(ROOT / "benchmarks" / "results" / "judges.json", res)


if __name__ == "__main__":
    main()
