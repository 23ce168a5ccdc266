"""The held-out evaluations behind ``RUN/report.html`` and the notebooks' result figures.

Each function generates under the interventions and returns plain JSON-able data (rates,
curves, traces); the ``evaluate_*`` functions cache it in ``RUN/eval/`` (:func:`~refusal_tl.
pipeline.cache.cached`), so a notebook opened after ``refusal-tl reproduce`` (or ``make demo``)
reads what the reproduction computed and a second run redraws every figure without generating.
The figures are drawn from this data by :mod:`refusal_tl.pipeline.figures`.

- :func:`method_table`: no intervention, DIM and RDO under ablation / subtraction on harmful
  prompts, addition on harmless prompts, first-token KL and the offline capability proxy
  (the paper's Table 5 and Fig. 2, with the proxy in place of its benchmarks).
- :func:`cone_rates`: the refusal rate of each sampled cone direction (Fig. 3/4/17 under
  ablation, Fig. 18 under addition), of the basis vectors and of reference directions, and
  best-of-N over the samples (Fig. 5/19). :func:`temperature_curves`: Fig. 5's baselines.
- :func:`repind_rates`: Fig. 6 traces, per-direction ablation (Fig. 7), top-k ablation by span
  and sequentially (Fig. 8) and the interference matrix.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from refusal_tl import data
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.benchmarks import lm_eval_scores
from refusal_tl.eval.capability import capability_proxy, own_answers
from refusal_tl.eval.evaluate import CONDITIONS, first_token_kl
from refusal_tl.eval.length import length_curve
from refusal_tl.eval.samples import cone_samples, evaluate_cone, evaluate_directions, evaluate_temperature
from refusal_tl.eval.sweeps import addition_sweep, alpha_grid, monotonic_sweep
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.pipeline.cache import Answers, cached, eval_key
from refusal_tl.pipeline.trust import LABELLED, asr_sets, judges_on_labels, protocol_table
from refusal_tl.profiles import EvalSizes
from refusal_tl.rdo.sweep import ablation_weight_sweep, retain_sweep
from refusal_tl.repind.analysis import figure6_traces, interference_matrix, topk_rates
from refusal_tl.stats import wilson
from refusal_tl.steer.hooks import Intervention

SEED = 42  # the cone samples are the first of 512 drawn at seed 42 (docs/algorithms.md §6)


def method_table(model: RefusalModel, directions: dict[str, RefusalDirection], harmful: list[str],
                 harmless: list[str], answers: Answers, capability_prompts: list[str] | None = None) -> dict:
    """One row per method (``no intervention`` first) with the refusal rates of the standard
    conditions (``harmful/ablate`` …), ``first-token KL`` on harmless prompts under ablation and,
    with ``capability_prompts``, the capability proxy's CE under ablation; plus the prompts and
    every completion (``completions[method][condition]``)."""
    sets = {"harmful": harmful, "harmless": harmless}
    rows, completions = [{"method": "no intervention"}], {"no intervention": {}}
    for name, d in [("no intervention", None), *directions.items()]:
        row, comp = rows[0] if d is None else {"method": name}, completions.setdefault(name, {})
        for which, kind in CONDITIONS:
            if (kind == "none") == (d is None):
                comp[f"{which}/{kind}"], scores = answers.answers(sets[which], d, kind)
                row[f"{which}/{kind}"] = sum(scores) / len(scores)
        if d is not None:
            row["first-token KL"] = first_token_kl(model, harmless, d, "ablate")
            rows.append(row)
    if capability_prompts:
        own = own_answers(model, capability_prompts, answers.max_new_tokens)
        rows[0]["capability CE"] = own.ce_clean
        for row, d in zip(rows[1:], directions.values()):
            cap = capability_proxy(model, capability_prompts, d, "ablate", answers=own)
            row |= {"capability CE": cap.ce_intervened, "capability ΔCE": cap.delta_ce}
    return {"rows": rows, "prompts": sets, "completions": completions, "max_new_tokens": answers.max_new_tokens,
            "n_capability": len(capability_prompts or [])}


def method_long(table: dict) -> pd.DataFrame:
    """:func:`method_table`'s data as one row per (method, condition) with ``value`` and ``n``
    (for Fig. 2 / 10, :func:`refusal_tl.plotting.method_comparison`)."""
    base, *methods = table["rows"]
    n = {k: len(v) for k, v in table["prompts"].items()}
    out = []
    for r in methods:
        values = {"harmful/none": base["harmful/none"], "harmless/none": base["harmless/none"]} | {
            k: r[k] for k in ("harmful/ablate", "harmful/subtract", "harmless/add")} | {
            "harmless/ablate KL": r["first-token KL"]}
        for k, v in values.items():
            size = n[k.split("/")[0]]
            lo, hi = (np.nan, np.nan) if k.endswith("KL") else wilson(round(v * size), size)
            out.append(dict(method=r["method"], condition=k, value=v, n=size, lo=lo, hi=hi))
    return pd.DataFrame(out)


def cone_rates(model: RefusalModel, prompts: list[str], cones: dict[int, RefusalCone],
               references: dict[str, RefusalDirection], n_samples: int, answers: Answers,
               intervention: Intervention = "ablate", basis: bool = True, seed: int = SEED) -> dict:
    """Refusal rates on ``prompts`` with no intervention, under each reference direction and under
    each of ``n_samples`` seeded samples of every cone (and, with ``basis``, each basis vector),
    with best-of-N over the samples. ``cones`` is a list of ``{"dims", "rates", "scores",
    "best_of_n": [[N, success], …], "basis"}``."""
    mnt = answers.max_new_tokens
    out = {"intervention": intervention, "n_prompts": len(prompts), "n_samples": n_samples, "seed": seed,
           "baseline": answers.rate(prompts),
           "references": {name: answers.rate(prompts, d, intervention) for name, d in references.items()},
           "cones": []}
    for n, c in cones.items():
        res = evaluate_cone(model, prompts, c, n_samples, seed, intervention, max_new_tokens=mnt)
        entry = {"dims": n, "rates": res.rates.tolist(), "scores": res.scores.tolist(),
                 "best_of_n": [[k, v] for k, v in res.best_of_n().items()]}
        if basis:
            entry["basis"] = evaluate_directions(model, prompts, c.alpha * c.basis, intervention, c.layer, c.alpha,
                                                 mnt, desc=f"basis of dim {n}").rates.tolist()
        out["cones"].append(entry)
    return out


def halving_share(rates: list[float], baseline: float) -> float:
    """The share of sampled directions whose refusal rate is at most half the baseline's (Sec. 5: each
    direction of the cone bypasses refusal)."""
    return sum(r <= baseline / 2 for r in rates) / len(rates)


def temperature_curves(model: RefusalModel, prompts: list[str], direction: RefusalDirection,
                       temperatures: tuple[float, ...], n: int, max_new_tokens: int = 32, seed: int = SEED) -> dict:
    """Best-of-N success of ``n`` completions sampled at each temperature under ablation of
    ``direction`` (the paper's Fig. 5 baselines)."""
    curves = []
    for t in temperatures:
        res = evaluate_temperature(model, prompts, direction, "ablate", temperature=t, n=n, seed=seed,
                                   max_new_tokens=max_new_tokens)
        curves.append({"temperature": t, "rate": res.rate, "best_of_n": [[k, v] for k, v in res.best_of_n().items()]})
    return {"method": direction.method, "curves": curves}


def sweeps(model: RefusalModel, directions: dict[str, RefusalDirection], harmful: list[str], sensitive: list[str],
           n_alphas: int, max_new_tokens: int = 32) -> dict:
    """Fig. 22's addition sweep (α from 0 to DIM's norm on harmful and sensitive prompts) as records."""
    dim = next(iter(directions.values()))
    alphas = np.linspace(0, dim.norm, n_alphas).round(2).tolist()
    table = addition_sweep(model, directions, {"harmful": harmful, "sensitive": sensitive}, alphas, max_new_tokens)
    return {"addition": table.to_dict("records")}


def cone_sweep(model: RefusalModel, prompts: list[str], dim: RefusalDirection, cones: dict[int, RefusalCone],
               n_samples: int, n_alphas: int, seed: int = SEED) -> dict:
    """Fig. 20: the refusal score under +α·r̂ for α ∈ [−‖DIM‖, ‖DIM‖], DIM against cone samples."""
    units = {"DIM": dim.vector[None]} | {f"cone dim {n}": cone_samples(c, n_samples, seed) for n, c in cones.items()}
    table = monotonic_sweep(model, prompts, units, dim.layer, alpha_grid(dim.norm, n_alphas))
    return {"records": table.to_dict("records")}


def repind_rates(model: RefusalModel, harmful: list[str], trace_prompts: list[str], dim: RefusalDirection,
                 perp: RefusalDirection, repind: list[RefusalDirection], answers: Answers) -> dict:
    """Fig. 6 traces (RDO⊥ and RepInd-1 against DIM), each direction's ablation rate (Fig. 7), the
    top-k curves by span projection and sequentially (Fig. 8) and the interference matrix."""
    traces = figure6_traces(model, trace_prompts, dim, {"RDO⊥": perp, "RepInd-1": repind[0]})
    named = {"DIM": dim, "RDO⊥": perp} | {f"RepInd-{i + 1}": d for i, d in enumerate(repind)}
    rates = {name: answers.rate(harmful, d, "ablate") for name, d in named.items()}
    curves = topk_rates(model, harmful, repind, answers.max_new_tokens, single={1: rates["RepInd-1"]})
    names, matrix = interference_matrix(model, trace_prompts, named)
    return {"baseline": answers.rate(harmful), "rates": rates, "traces": traces,
            "topk": {name: [[k, v] for k, v in sorted(c.items())] for name, c in curves.items()},
            "interference": {"names": names, "matrix": matrix.tolist()}}


def compare_directions(model: RefusalModel, directions: dict[str, RefusalDirection], harmful: list[str],
                       harmless: list[str], max_new_tokens: int = 32) -> pd.DataFrame:
    """Refusal rates of several directions under the standard conditions, and first-token KL, one row
    per (method, condition) (:func:`method_long` of :func:`method_table`)."""
    return method_long(method_table(model, directions, harmful, harmless, Answers(model, max_new_tokens)))


# Per stage: the evaluations the report and the notebooks show, each cached in RUN/eval under its name.

def evaluate_methods(model: RefusalModel, dirs: dict[str, RefusalDirection], s: EvalSizes, run_dir, answers: Answers,
                     rdo_run=None) -> dict:
    """``methods`` (Table 5), ``lengths`` (refusal against answer length), ``sweeps`` (Fig. 22) and, where
    the sizes ask for them, ``retain`` (Fig. 15, one RDO per λ_ret beside ``rdo_run``), ``abl_sweep``
    (Fig. 14, one RDO per λ_abl and seed) and ``benchmarks`` (lm-eval, Table 4)."""
    harmful, harmless = data.bundled("harmful", "test", s.n_eval), data.bundled("harmless", "test", s.n_eval)
    cap = data.bundled("harmless", "test", s.n_capability)
    mnt, out = s.max_new_tokens, {}
    run = lambda name, compute, **key: out.setdefault(name, cached(run_dir, name, eval_key(model, evaluation=name,
                                                                                              **key), compute))
    methods = run("methods", lambda: method_table(model, dirs, harmful, harmless, answers, cap),
                  dirs=dirs, prompts=[harmful, harmless, cap], mnt=mnt)
    for name, d in [("no intervention", None), *dirs.items()]:  # a cached table still feeds the later sections
        for key, completions in methods["completions"][name].items():
            which, kind = key.split("/")
            answers.add(d, kind, methods["prompts"][which], completions, answers.judge(methods["prompts"][which],
                                                                                       completions))
    for name in s.protocols:  # Table 5's headline numbers in other units (heretic's)
        run(f"methods_{name}", lambda name=name: protocol_table(model, dirs, harmful, harmless, name), dirs=dirs,
            prompts=[harmful, harmless], protocol=name)
    if s.asr_sets:  # Figs. 11–13 (offline: the bundled harmful test prompts, whose answers are reused)
        run("asr_sets", lambda: asr_sets(model, dirs, s.asr_sets, s.n_eval, answers), dirs=dirs, sets=s.asr_sets,
            n=s.n_eval, mnt=mnt, online=data.hub_reachable())
    if s.judge_agreement and LABELLED.is_file():  # the judges against the hand labels (repository checkouts)
        run("judges", lambda: judges_on_labels(model), labels=LABELLED.read_text())
    if s.answer_lengths:  # the answer-length curve on Table 5's harmful prompts
        run("lengths", lambda: {"rows": length_curve(model, harmful, {"no intervention": None} | dirs,
                                                     s.answer_lengths).to_dict("records")},
            dirs=dirs, prompts=harmful, lengths=s.answer_lengths)
    sweep_harmful, sensitive = data.bundled("harmful", "test", s.n_sweep), data.bundled("sensitive", "all", s.n_sweep)
    run("sweeps", lambda: sweeps(model, dirs, sweep_harmful, sensitive, s.n_alphas, mnt),
        dirs=dirs, prompts=[sweep_harmful, sensitive], n_alphas=s.n_alphas, mnt=mnt)
    if rdo_run is not None and s.retain_lambdas:  # trained beside the RDO run, in its RUN/rdo-ret{λ}
        cfg = rdo_run.config
        if s.retain_epochs:
            cfg = replace(cfg, rdo=replace(cfg.rdo, epochs=s.retain_epochs))
        run("retain", lambda: {"rows": retain_sweep(model, Path(rdo_run.run_dir).parent, cfg, list(s.retain_lambdas),
                                                    harmful, harmless, mnt).to_dict("records")},
            rdo=asdict(cfg), lambdas=s.retain_lambdas, prompts=[harmful, harmless], mnt=mnt)
    if rdo_run is not None and s.abl_lambdas:  # Fig. 14, trained beside the RDO run in its RUN/rdo-abl{λ}-s{seed}
        cfg = rdo_run.config
        if s.retain_epochs:
            cfg = replace(cfg, rdo=replace(cfg.rdo, epochs=s.retain_epochs))
        run("abl_sweep", lambda: {"rows": ablation_weight_sweep(
            model, Path(rdo_run.run_dir).parent, cfg, list(s.abl_lambdas), harmful, s.abl_seeds,
            mnt).to_dict("records")}, rdo=asdict(cfg), lambdas=s.abl_lambdas, seeds=s.abl_seeds, prompts=harmful,
            mnt=mnt)
    if s.bench_tasks:
        try:
            run("benchmarks", lambda: lm_eval_scores(model, {k: [d] for k, d in dirs.items()}, list(s.bench_tasks),
                                                     s.bench_limit, task_dir=s.bench_tasks_dir,
                                                     gsm8k_filter=s.gsm8k_filter).to_dict(),
                dirs=dirs, tasks=s.bench_tasks, limit=s.bench_limit, folder=s.bench_tasks_dir, gsm8k=s.gsm8k_filter)
        except RefusalTLError as e:  # no lm-eval or no Hub: the report says so and keeps the proxy
            out["benchmarks"] = {"unavailable": str(e)}
    return out


def evaluate_cones(model: RefusalModel, cones: dict[int, RefusalCone], dirs: dict[str, RefusalDirection],
                   s: EvalSizes, run_dir, answers: Answers) -> dict:
    """``cone_ablate`` (Figs. 3/17), ``cone_induce`` (Fig. 18), ``temperatures`` (Fig. 5), ``cone_sweep`` (Fig. 20)."""
    m, mnt, out = s.n_cone_samples, s.max_new_tokens, {}
    ch, cs = data.bundled("harmful", "test", s.n_cone_eval), data.bundled("harmless", "test", s.n_cone_eval)
    key = dict(cones=cones, refs=dirs, m=m, seed=SEED, mnt=mnt)
    run = lambda name, compute, **k: out.setdefault(name, cached(run_dir, name, eval_key(model, evaluation=name,
                                                                                            **k), compute))
    run("cone_ablate", lambda: cone_rates(model, ch, cones, dirs, m, answers, "ablate"), prompts=ch, **key)
    run("cone_induce", lambda: cone_rates(model, cs, cones, dirs, m, answers, "add", basis=False), prompts=cs, **key)
    if "RDO" in dirs and s.bon_temperatures:
        run("temperatures", lambda: temperature_curves(model, ch, dirs["RDO"], s.bon_temperatures, m, mnt),
            prompts=ch, rdo=dirs["RDO"], temps=s.bon_temperatures, m=m, seed=SEED, mnt=mnt)
    sp = data.bundled("harmful", "val", s.n_sweep)
    run("cone_sweep", lambda: cone_sweep(model, sp, dirs["DIM"], cones, m, s.n_cone_alphas),
        prompts=sp, dim=dirs["DIM"], n_alphas=s.n_cone_alphas, **key)
    return out


def evaluate_repind(model: RefusalModel, dim: RefusalDirection, perp: RefusalDirection,
                    repind: list[RefusalDirection], s: EvalSizes, run_dir, answers: Answers) -> dict:
    """``repind``: Figs. 6–8 and the interference matrix."""
    harmful, tp = data.bundled("harmful", "test", s.n_eval), data.bundled("harmful", "val", s.n_trace)
    return {"repind": cached(run_dir, "repind", eval_key(model, evaluation="repind", prompts=[harmful, tp], dim=dim,
                                                          perp=perp, rep=repind, mnt=s.max_new_tokens),
                             lambda: repind_rates(model, harmful, tp, dim, perp, repind, answers))}


def evaluate_gcg(model: RefusalModel, prompts: list[str], run_dir, answers: Answers) -> dict:
    """``gcg``: how often the model refuses the attacked prompts without a suffix (Fig. 9's baseline)."""
    key = eval_key(model, evaluation="gcg", prompts=prompts, mnt=answers.max_new_tokens)
    return {"gcg": cached(run_dir, "gcg", key, lambda: {"prompts": prompts, "baseline": answers.rate(prompts)})}
