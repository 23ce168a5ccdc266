"""The evaluations behind the notebooks' result figures and ``RUN/report.html``.

Each function generates under the interventions and returns plain JSON-able data (rates,
curves, traces), so that a reproduction caches it in ``RUN/eval/`` (:func:`cached`) and a
second run redraws every figure without generating again. The figures are drawn from this
data by :mod:`refusal_tl.plotting.suite`.

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

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.capability import capability_proxy, own_answers
from refusal_tl.eval.evaluate import CONDITIONS, evaluate_conditions, evaluate_intervention, first_token_kl
from refusal_tl.eval.judges import Judge
from refusal_tl.eval.samples import evaluate_cone, evaluate_directions, evaluate_temperature
from refusal_tl.eval.sweeps import addition_sweep, alpha_grid, monotonic_sweep
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.io import json_default, json_digest, tensor_digest, write_json
from refusal_tl.model import RefusalModel

if TYPE_CHECKING:
    import pandas as pd


def cached(run_dir: str | Path | None, name: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` as JSON data, or the data saved in ``RUN/eval/{name}.json`` when it was made
    with the same ``key``. The result always goes through JSON, so a first and a cached run
    return the same thing (dictionary keys are strings)."""
    digest = json_digest(key)
    path = Path(run_dir) / "eval" / f"{name}.json" if run_dir is not None else None
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = {}
        if saved.get("key") == digest:
            return saved["data"]
    data = json.loads(json.dumps(compute(), default=json_default))
    if path is not None:
        write_json(path, {"key": digest, "data": data})
    return data


def eval_key(model: RefusalModel, **parts) -> dict:
    """A cache key: the model (weights and dtype), the directions' values and every setting and prompt."""
    def one(x):
        if isinstance(x, RefusalDirection):
            return [tensor_digest(x.vector), x.layer]  # addition happens at the direction's layer
        if isinstance(x, RefusalCone):
            return [tensor_digest(x.basis), x.layer, x.alpha]
        if isinstance(x, dict):
            return {str(k): one(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [one(v) for v in x]
        return x
    return {**model.key, **{k: one(v) for k, v in parts.items()}}


def method_table(model: RefusalModel, directions: dict[str, RefusalDirection], harmful: list[str],
                 harmless: list[str], max_new_tokens: int = 32, capability_prompts: list[str] | None = None,
                 judge: Judge | None = None, batch_size: int = 16) -> dict:
    """One row per method (``no intervention`` first) with the refusal rates of the standard
    conditions (``harmful/ablate`` …), ``first-token KL`` on harmless prompts under ablation and,
    with ``capability_prompts``, the capability proxy's CE under ablation; plus the prompts and
    every completion (``completions[method][condition]``)."""
    base = evaluate_conditions(model, None, harmful, harmless, max_new_tokens, judge, batch_size,
                               conditions=[c for c in CONDITIONS if c[1] == "none"])
    rows = [{"method": "no intervention", **{k: r.rate for k, r in base.items()}}]
    completions = {"no intervention": {k: r.completions for k, r in base.items()}}
    answers = own_answers(model, capability_prompts, max_new_tokens, batch_size) if capability_prompts else None
    if answers:
        rows[0]["capability CE"] = answers.ce_clean
    for name, d in directions.items():
        runs = evaluate_conditions(model, d, harmful, harmless, max_new_tokens, judge, batch_size,
                                   conditions=[c for c in CONDITIONS if c[1] != "none"])
        row = {"method": name, **{k: r.rate for k, r in runs.items()},
               "first-token KL": first_token_kl(model, harmless, d, "ablate", batch_size=batch_size)}
        if answers:
            cap = capability_proxy(model, capability_prompts, d, "ablate", batch_size=batch_size, answers=answers)
            row |= {"capability CE": cap.ce_intervened, "capability ΔCE": cap.delta_ce}
        rows.append(row)
        completions[name] = {k: r.completions for k, r in runs.items()}
    return {"rows": rows, "prompts": {"harmful": harmful, "harmless": harmless}, "completions": completions,
            "max_new_tokens": max_new_tokens, "n_capability": len(capability_prompts or [])}


def method_long(data: dict) -> "pd.DataFrame":
    """:func:`method_table`'s data as one row per (method, condition) with ``value`` and ``n``
    (the form of :func:`refusal_tl.eval.evaluate.compare_directions`, for Fig. 2 / 10)."""
    import pandas as pd

    base, *methods = data["rows"]
    n = {k: len(v) for k, v in data["prompts"].items()}
    out = []
    for r in methods:
        values = {"harmful/none": base["harmful/none"], "harmless/none": base["harmless/none"]} | {
            k: r[k] for k in ("harmful/ablate", "harmful/subtract", "harmless/add")} | {
            "harmless/ablate KL": r["first-token KL"]}
        out += [dict(method=r["method"], condition=k, value=v, n=n[k.split("/")[0]]) for k, v in values.items()]
    return pd.DataFrame(out)


def cone_rates(model: RefusalModel, prompts: list[str], cones: dict[int, RefusalCone],
               references: dict[str, RefusalDirection], n_samples: int, seed: int = 42, intervention: str = "ablate",
               max_new_tokens: int = 32, basis: bool = True) -> dict:
    """Refusal rates on ``prompts`` with no intervention, under each reference direction and under
    each of ``n_samples`` seeded samples of every cone (and, with ``basis``, each basis vector),
    with best-of-N over the samples. ``cones`` is a list of ``{"dims", "rates", "scores",
    "best_of_n": [[N, success], …], "basis"}``."""
    out = {"intervention": intervention, "n_prompts": len(prompts), "n_samples": n_samples, "seed": seed,
           "baseline": evaluate_intervention(model, prompts, None, "none", max_new_tokens=max_new_tokens).rate,
           "references": {name: evaluate_intervention(model, prompts, d, intervention,
                                                      max_new_tokens=max_new_tokens).rate
                          for name, d in references.items()},
           "cones": []}
    for n, c in cones.items():
        res = evaluate_cone(model, prompts, c, n_samples, seed, intervention, max_new_tokens=max_new_tokens)
        entry = {"dims": n, "rates": res.rates.tolist(), "scores": res.scores.tolist(),
                 "best_of_n": [[k, v] for k, v in res.best_of_n().items()]}
        if basis:
            entry["basis"] = evaluate_directions(model, prompts, c.alpha * c.basis, intervention, c.layer, c.alpha,
                                                 max_new_tokens, desc=f"basis of dim {n}").rates.tolist()
        out["cones"].append(entry)
    return out


def temperature_curves(model: RefusalModel, prompts: list[str], direction: RefusalDirection,
                       temperatures: list[float], n: int, seed: int = 42, max_new_tokens: int = 32) -> dict:
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
    import numpy as np

    dim = next(iter(directions.values()))
    alphas = np.linspace(0, dim.norm, n_alphas).round(2).tolist()
    table = addition_sweep(model, directions, {"harmful": harmful, "sensitive": sensitive}, alphas, max_new_tokens)
    return {"addition": table.to_dict("records")}


def cone_sweep(model: RefusalModel, prompts: list[str], dim: RefusalDirection, cones: dict[int, RefusalCone],
               n_samples: int, n_alphas: int, seed: int = 42) -> dict:
    """Fig. 20: the refusal score under +α·r̂ for α ∈ [−‖DIM‖, ‖DIM‖], DIM against cone samples."""
    from refusal_tl.eval.samples import cone_samples

    units = {"DIM": dim.vector[None]} | {f"cone dim {n}": cone_samples(c, n_samples, seed) for n, c in cones.items()}
    table = monotonic_sweep(model, prompts, units, dim.layer, alpha_grid(dim.norm, n_alphas))
    return {"records": table.to_dict("records")}


def repind_rates(model: RefusalModel, harmful: list[str], trace_prompts: list[str], dim: RefusalDirection,
                 perp: RefusalDirection, repind: list[RefusalDirection], max_new_tokens: int = 32) -> dict:
    """Fig. 6 traces (RDO⊥ and RepInd-1 against DIM), each direction's ablation rate (Fig. 7), the
    top-k curves by span projection and sequentially (Fig. 8) and the interference matrix."""
    from refusal_tl.repind.analysis import ablation_rates, figure6_traces, interference_matrix, topk_rates

    traces = figure6_traces(model, trace_prompts, dim, {"RDO⊥": perp, "RepInd-1": repind[0]})
    named = {"DIM": dim, "RDO⊥": perp} | {f"RepInd-{i + 1}": d for i, d in enumerate(repind)}
    rates = ablation_rates(model, harmful, named, max_new_tokens)
    curves = topk_rates(model, harmful, repind, max_new_tokens, single={1: rates["RepInd-1"]})
    names, matrix = interference_matrix(model, trace_prompts, named)
    base = evaluate_intervention(model, harmful, None, "none", max_new_tokens=max_new_tokens).rate
    return {"baseline": base, "rates": rates, "traces": traces,
            "topk": {name: [[k, v] for k, v in sorted(c.items())] for name, c in curves.items()},
            "interference": {"names": names, "matrix": matrix.tolist()}}


def retain_tradeoff(model: RefusalModel, rdo_config, run_dir: str | Path, s: dict, harmful: list[str],
                  harmless: list[str]) -> dict:
    """Paper Fig. 15: one RDO direction per λ_ret in ``s["retain_lambdas"]`` (``s["retain_epochs"]``
    epochs each, resumable in ``RUN/rdo_ret{λ}``), its held-out refusal under ablation and its
    first-token KL on harmless prompts (the offline side-effect axis)."""
    from dataclasses import replace

    from refusal_tl.rdo.sweep import retain_sweep

    cfg = rdo_config
    if s.get("retain_epochs"):
        cfg = replace(cfg, rdo=replace(cfg.rdo, epochs=s["retain_epochs"]))
    table = retain_sweep(model, run_dir, cfg, list(s["retain_lambdas"]), harmful, harmless, s["max_new_tokens"])
    return {"rows": table.to_dict("records")}


def benchmarks(model: RefusalModel, dirs: dict[str, RefusalDirection], run, s: dict) -> dict:
    """lm-eval's tasks ``s["bench_tasks"]`` without and with each direction ablated (paper Table 4),
    or ``{"unavailable": why}`` (no lm-eval, no Hub): the report then says so and keeps the proxy."""
    from refusal_tl.eval.benchmarks import lm_eval_scores

    tasks, limit, folder = list(s["bench_tasks"]), s.get("bench_limit"), s.get("bench_tasks_dir")
    try:
        return run("benchmarks", lambda: lm_eval_scores(model, {k: [d] for k, d in dirs.items()}, tasks, limit,
                                                        task_dir=folder).to_dict(),
                   dirs=dirs, tasks=tasks, limit=limit, folder=folder)
    except RefusalTLError as e:
        return {"unavailable": str(e)}


def evaluate_run(results: dict, model: RefusalModel, run_dir: str | Path | None, s: dict) -> dict[str, dict]:
    """Every evaluation the report draws for the stages in ``results`` (as
    :func:`refusal_tl.reproduce.reproduce` keeps them), on the bundled held-out prompts with the
    sizes ``s`` (a profile's ``report`` settings), each cached in ``RUN/eval``."""
    from refusal_tl import data

    n, mnt, seed = s["n_eval"], s["max_new_tokens"], 42
    harmful, harmless = data.bundled("harmful", "test", n), data.bundled("harmless", "test", n)
    dirs = {name: results[k].direction for name, k in (("DIM", "dim"), ("RDO", "rdo")) if k in results}
    out = {}

    def run(name, compute, **key):
        out[name] = cached(run_dir, name, eval_key(model, evaluation=name, **key), compute)
        return out[name]

    if dirs:
        cap = data.bundled("harmless", "test", s["n_capability"])
        run("methods", lambda: method_table(model, dirs, harmful, harmless, mnt, cap),
            dirs=dirs, prompts=[harmful, harmless, cap], mnt=mnt)
        sweep_harmful = data.bundled("harmful", "test", s["n_sweep"])
        sensitive = data.bundled("sensitive", "all", s["n_sweep"])
        run("sweeps", lambda: sweeps(model, dirs, sweep_harmful, sensitive, s["n_alphas"], mnt),
            dirs=dirs, prompts=[sweep_harmful, sensitive], n_alphas=s["n_alphas"], mnt=mnt)
    if "rdo" in results and s.get("retain_lambdas"):  # trained beside the RDO run, in its RUN/rdo_ret{λ}
        rdo_run = Path(results["rdo"].run_dir).parent
        run("retain", lambda: retain_tradeoff(model, results["rdo"].config, rdo_run, s, harmful, harmless),
            rdo=asdict(results["rdo"].config), s=[s["retain_lambdas"], s.get("retain_epochs")],
            prompts=[harmful, harmless], mnt=mnt)
    if dirs and s.get("bench_tasks"):
        out["benchmarks"] = benchmarks(model, dirs, run, s)
    if "cone" in results:
        cones, m = results["cone"].cones, s["n_cone_samples"]
        ch, cs = data.bundled("harmful", "test", s["n_cone_eval"]), data.bundled("harmless", "test", s["n_cone_eval"])
        key = dict(cones=cones, refs=dirs, m=m, seed=seed, mnt=mnt)
        run("cone_ablate", lambda: cone_rates(model, ch, cones, dirs, m, seed, "ablate", mnt), prompts=ch, **key)
        run("cone_induce", lambda: cone_rates(model, cs, cones, dirs, m, seed, "add", mnt, basis=False),
            prompts=cs, **key)
        if "RDO" in dirs and s["bon_temperatures"]:
            temps = list(s["bon_temperatures"])
            run("temperatures", lambda: temperature_curves(model, ch, dirs["RDO"], temps, m, seed, mnt),
                prompts=ch, rdo=dirs["RDO"], temps=temps, m=m, seed=seed, mnt=mnt)
        sp = data.bundled("harmful", "val", s["n_sweep"])
        run("cone_sweep", lambda: cone_sweep(model, sp, dirs["DIM"], cones, m, s["n_cone_alphas"], seed),
            prompts=sp, dim=dirs["DIM"], n_alphas=s["n_cone_alphas"], **key)
    if "repind" in results:
        rep, perp = results["repind"]["repind"].directions, results["repind"]["rdo-perp"].direction
        tp = data.bundled("harmful", "val", s["n_trace"])
        run("repind", lambda: repind_rates(model, harmful, tp, dirs["DIM"], perp, rep, mnt),
            prompts=[harmful, tp], dim=dirs["DIM"], perp=perp, rep=rep, mnt=mnt)
    return out
