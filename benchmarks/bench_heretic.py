"""refusal_tl's abliteration search beside heretic-llm 1.4.0 on the same model, prompts, trial
budget, dtype and protocol (docs/algorithms.md §14; results in docs/results.md).

    python benchmarks/bench_heretic.py --run runs/demo [--trials 32] [--profile cpu]

1. heretic runs in its own virtual environment (``--venv``, default
   ``~/.cache/refusal_tl/heretic-venv``; created with ``torch==2.13.0`` and ``heretic-llm==1.4.0`` if
   missing, since its pins differ from ours) on the bundled model's Hugging Face folder in the model
   cache. It reads plain-text prompt files: its direction prompts are the run's DIM train prompts, its
   evaluation prompts our search's validation prompts; bf16, batch 32, 100-token answers, the system
   prompt "You are a helpful assistant.", its markers, the same number of trials and TPE start-up
   trials, seed 42. ``response_prefix`` is set to "" (no chain-of-thought prefix to detect; heretic
   would otherwise spend 200 generations finding none). heretic is interactive after its study; it is
   run with no input, and its trials are read from its Optuna journal.
2. ``refusal-tl search`` runs with the same budget on the run directory.
3. Both tools pick with the same rule on validation prompts: the lowest KL among trials whose refusals
   are at most the larger of the two tools' fewest refusals. The picks are then evaluated on the bundled
   **test** prompts, which neither search saw: heretic's by heretic's own code (a driver in its venv:
   its direction computation, ``Model.abliterate`` with the trial's parameters, its generation and
   marker judge), ours by our hooks. Refusals get Wilson intervals, first-token KL a bootstrap over
   prompts.

Writes ``benchmarks/results/heretic.json`` (both fronts, time per trial, wall time, test points).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna

from refusal_tl import data
from refusal_tl.abliterate.search import (
    Scorer,
    SearchConfig,
    SearchResult,
    pareto_front,
    pick,
    run_search,
    search_prompts,
    trial_edit,
)
from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.run import prompt_sets
from refusal_tl.io import read_json, write_json
from refusal_tl.model import load_model
from refusal_tl.model.bundled import bundled_dir, ensure_bundled
from refusal_tl.plotting import pareto_figure, save_figure
from refusal_tl.stats import bootstrap, wilson

RESULTS = Path(__file__).parent / "results" / "heretic.json"
FIGURE = Path(__file__).parent.parent / "figures" / "06_search_vs_heretic"
VENV = Path.home() / ".cache" / "refusal_tl" / "heretic-venv"

DRIVER = textwrap.dedent('''
    """Run inside heretic's venv: dump its trials, or evaluate one trial's edit on test prompts."""
    import json, os, sys
    sys.argv = ["heretic"]  # heretic's Settings parse the command line
    import optuna, torch, torch.nn.functional as F
    from heretic.config import DatasetSpecification, Settings
    from heretic.evaluator import Evaluator
    from heretic.model import AbliterationParameters, Model
    from heretic.utils import load_prompts

    settings = Settings()
    folder = settings.study_checkpoint_dir
    journal = os.path.join(folder, [f for f in os.listdir(folder) if f.endswith(".jsonl")][0])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    study = optuna.load_study(study_name="heretic", storage=storage)
    if os.environ["MODE"] == "trials":
        out = [{"number": t.number, "params": t.params, "refusals": t.user_attrs["refusals"],
                "kl": t.user_attrs["kl_divergence"], "direction_index": t.user_attrs["direction_index"],
                "parameters": t.user_attrs["parameters"],
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds()}
               for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    else:
        trial = study.trials[int(os.environ["TRIAL"])]
        model = Model(settings)
        good = model.get_residuals_mean(load_prompts(settings, settings.good_prompts))
        bad = model.get_residuals_mean(load_prompts(settings, settings.bad_prompts))
        directions = F.normalize(bad - good, p=2, dim=1)
        if settings.orthogonalize_direction:  # as heretic's main does
            g = F.normalize(good, p=2, dim=1)
            directions = F.normalize(directions - (directions * g).sum(1, keepdim=True) * g, p=2, dim=1)
        test_good = load_prompts(settings, DatasetSpecification(dataset=os.environ["GOOD_TEST"]))
        test_bad = load_prompts(settings, DatasetSpecification(dataset=os.environ["BAD_TEST"]))
        judge = Evaluator.__new__(Evaluator)
        judge.settings = settings
        def measure():
            lp = model.get_logprobs_batched(test_good).float()
            answers = model.get_responses_batched(test_bad, skip_special_tokens=True)
            return lp, [bool(judge.is_refusal(a)) for a in answers], answers
        base_lp, base_ref, _ = measure()
        params = {k: AbliterationParameters(**v) for k, v in trial.user_attrs["parameters"].items()}
        model.abliterate(directions, trial.user_attrs["direction_index"], params)
        lp, ref, answers = measure()
        kl = (base_lp.exp() * (base_lp - lp)).sum(-1)
        out = {"trial": trial.number, "kl": kl.tolist(), "refusals": ref, "baseline_refusals": base_ref,
               "answers": answers[:5]}
    print("HERETIC_JSON " + json.dumps(out))
''')


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "heretic").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "heretic-llm==1.4.0"], check=True)
    return python


def write_lines(path: Path, prompts: list[str]) -> str:
    path.write_text("".join(" ".join(p.split()) + "\n" for p in prompts))
    return str(path)


def heretic_config(work: Path, files: dict[str, str], cfg: SearchConfig) -> None:
    spec = lambda f: f'{{ dataset = "{f}" }}'
    (work / "config.toml").write_text(textwrap.dedent(f'''\
        model = "{bundled_dir()}"
        dtypes = ["bfloat16"]
        device_map = "cpu"
        batch_size = {cfg.batch_size}
        max_response_length = {cfg.answer_tokens}
        response_prefix = ""
        n_trials = {cfg.trials}
        n_startup_trials = {cfg.startup_trials}
        seed = {cfg.seed}
        study_checkpoint_dir = "{work / 'checkpoints'}"
        good_prompts = {spec(files['good_train'])}
        bad_prompts = {spec(files['bad_train'])}
        good_evaluation_prompts = {spec(files['good_val'])}
        bad_evaluation_prompts = {spec(files['bad_val'])}
        '''))


def driver(python: Path, work: Path, env: dict) -> dict:
    (work / "driver.py").write_text(DRIVER)
    res = subprocess.run([str(python), str(work / "driver.py")], cwd=work, env={**os.environ, **env},
                         capture_output=True, text=True)
    line = [x for x in res.stdout.splitlines() if x.startswith("HERETIC_JSON ")]
    if not line:
        raise RuntimeError(f"heretic driver failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return json.loads(line[-1].removeprefix("HERETIC_JSON "))


def test_point(refusals: list[bool], kl: list[float]) -> dict:
    k, n = sum(refusals), len(refusals)
    lo, hi = bootstrap(kl, lambda x: x.mean(-1), seed=0)
    return {"refusals": k, "n": n, "refusals_ci95": list(wilson(k, n)), "kl": sum(kl) / len(kl), "kl_ci95": [lo, hi]}


def with_speed_rows(out: dict) -> dict:
    """The comparison plus what docs/performance.md renders: the title, the machine and one row per time."""
    from timing import _commit, machine

    ours, theirs = out["refusal_tl"], out["heretic"]
    rows = [{"what": "refusal_tl search, mean per trial", "seconds": ours["seconds_per_trial"]},
            {"what": "heretic 1.4.0, mean per trial", "seconds": theirs["seconds_per_trial"]},
            {"what": f"refusal_tl search, {out['trials']} trials (wall, with its baseline)",
             "seconds": ours["wall_seconds"]},
            {"what": f"heretic, {out['trials']} trials (wall, with its set-up)", "seconds": theirs["wall_seconds"]}]
    return {"benchmark": "heretic", "title": "Abliteration search: refusal_tl beside heretic 1.4.0",
            "setup": f"bundled model, bf16, {out['trials']} trials each, heretic's protocol ({out['answer_tokens']} "
                     f"tokens), {out['n_val']['harmful']} + {out['n_val']['harmless']} validation prompts; heretic / "
                     f"refusal_tl time per trial {out['time_per_trial_ratio']:.2f}× (quality: docs/results.md)",
            "date": time.strftime("%Y-%m-%d"), "commit": _commit(), "machine": machine(), "rows": rows, **out}


def comparison_figure(run: Path, doc: dict, stem: Path) -> Path:
    """Our search's trials and front with heretic's front over them (validation prompts), as
    ``stem.html`` and ``stem.png``."""
    res = SearchResult.load(run / "search")
    chosen = next(t for t in res.trials if t["number"] == doc["refusal_tl"]["pick"]["number"])
    fig = pareto_figure(res, chosen, other={"name": "heretic 1.4.0 front", "points": doc["heretic"]["front"]})
    fig.update_layout(title=f"refusal_tl search vs heretic 1.4.0: {doc['trials']} trials each, validation prompts")
    return save_figure(fig, stem, png=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"))
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--work", type=Path, default=None, help="heretic's folder (default RUN/heretic)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--skip-ours", action="store_true", help="reuse RUN/search (already searched)")
    ap.add_argument("--figure", type=Path, default=FIGURE, help="the comparison figure (.html and .png)")
    ap.add_argument("--figure-only", action="store_true", help="redraw the figure from --out and RUN/search")
    args = ap.parse_args()
    if args.figure_only:
        print(f"wrote {comparison_figure(args.run, read_json(args.out), args.figure)}")
        return
    work = (args.work or args.run / "heretic").resolve()  # heretic runs in it: absolute paths throughout
    shutil.rmtree(work / "checkpoints", ignore_errors=True)  # a fresh study of the same budget
    work.mkdir(parents=True, exist_ok=True)
    ensure_bundled()
    python = ensure_venv(args.venv)
    model = load_model("bundled", dtype="bfloat16")
    cfg = SearchConfig.from_profile(args.profile, trials=args.trials)
    val = search_prompts(args.run, cfg)
    test = {"harmful": data.bundled("harmful", "test"), "harmless": data.bundled("harmless", "test")}  # all of it
    train = prompt_sets(DimConfig(**read_json(args.run / "dim" / "metadata.json")["config"]))
    files = {"good_train": write_lines(work / "good_train.txt", train["harmless_train"]),
             "bad_train": write_lines(work / "bad_train.txt", train["harmful_train"]),
             "good_val": write_lines(work / "good_val.txt", val["harmless"]),
             "bad_val": write_lines(work / "bad_val.txt", val["harmful"]),
             "good_test": write_lines(work / "good_test.txt", test["harmless"]),
             "bad_test": write_lines(work / "bad_test.txt", test["harmful"])}

    # ours
    start = time.perf_counter()
    ours = SearchResult.load(args.run / "search") if args.skip_ours else run_search(cfg, args.run, model)
    ours_wall = ours.seconds if args.skip_ours else time.perf_counter() - start
    study = optuna.load_study(study_name="refusal_tl", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(args.run / "search" / "journal.log"))))
    ours_secs = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
                 if t.state == optuna.trial.TrialState.COMPLETE]

    # heretic
    heretic_config(work, files, cfg)
    start = time.perf_counter()
    log = subprocess.run([str(python.parent / "heretic")], cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    heretic_wall = time.perf_counter() - start
    (work / "heretic.log").write_text(log.stdout + log.stderr)
    theirs = driver(python, work, {"MODE": "trials"})
    if len(theirs) < cfg.trials:
        raise RuntimeError(f"heretic finished {len(theirs)} of {cfg.trials} trials; see {work / 'heretic.log'}")

    # both pick on validation with the same rule, then the test prompts
    target = max(min(t["refusals"] for t in ours.trials), min(t["refusals"] for t in theirs))
    our_pick, their_pick = pick(ours.trials, target), pick(theirs, target)
    h = driver(python, work, {"MODE": "test", "TRIAL": str(their_pick["number"]), "GOOD_TEST": files["good_test"],
                              "BAD_TEST": files["bad_test"]})
    score = Scorer(model, cfg, test)  # the search's own scoring, on the test prompts
    ours_on_test = score.per_prompt(trial_edit(ours, our_pick, model))
    base_on_test = score.per_prompt(None)
    ours_test = test_point([bool(x) for x in ours_on_test["refusals"]], ours_on_test["kl"])
    heretic_test = test_point(h["refusals"], h["kl"])
    out = {
        "model": model.key, "trials": cfg.trials, "startup_trials": cfg.startup_trials, "protocol": cfg.protocol,
        "answer_tokens": cfg.answer_tokens, "n_val": {"harmful": len(val["harmful"]), "harmless": len(val["harmless"])},
        "n_test": {"harmful": len(test["harmful"]), "harmless": len(test["harmless"])},
        "refusal_tl": {"front": [{k: t[k] for k in ("number", "refusals", "kl")} | {"source": t["params"]["source"]}
                                 for t in ours.front()],
                       "seconds_per_trial": sum(ours_secs) / len(ours_secs), "wall_seconds": ours_wall,
                       "pick": our_pick, "test": ours_test,
                       "baseline_test_refusals": sum(base_on_test["refusals"]),
                       "defaults": ours.defaults},
        "heretic": {"front": [{k: t[k] for k in ("number", "refusals", "kl")} for t in pareto_front(theirs)],
                    "seconds_per_trial": sum(t["seconds"] for t in theirs) / len(theirs),
                    "wall_seconds": heretic_wall, "pick": their_pick, "test": heretic_test,
                    "baseline_test_refusals": sum(h["baseline_refusals"]), "answers": h["answers"]},
        "pick_target_refusals": target,
    }
    out["time_per_trial_ratio"] = out["heretic"]["seconds_per_trial"] / out["refusal_tl"]["seconds_per_trial"]
    write_json(args.out, with_speed_rows(out))
    for name in ("refusal_tl", "heretic"):
        r = out[name]
        print(f"{name:>10}: {r['seconds_per_trial']:.1f} s/trial, wall {r['wall_seconds'] / 60:.1f} min; "
              f"front {[(p['refusals'], round(p['kl'], 4)) for p in r['front']]}")
        t = r["test"]
        print(f"{'':>10}  pick trial {r['pick']['number']} (val {r['pick']['refusals']:g} refusals, KL "
              f"{r['pick']['kl']:.4f}) -> test refusals {t['refusals']}/{t['n']} "
              f"[{100 * t['refusals_ci95'][0]:.0f}-{100 * t['refusals_ci95'][1]:.0f} %], KL {t['kl']:.4f} "
              f"[{t['kl_ci95'][0]:.4f}, {t['kl_ci95'][1]:.4f}]")
    print(f"heretic / refusal_tl time per trial: {out['time_per_trial_ratio']:.2f}x -> {args.out}")
    print(f"wrote {comparison_figure(args.run, out, args.figure)}")


if __name__ == "__main__":
    main()
