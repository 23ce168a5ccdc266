"""report.html: one self-contained page; every figure renders in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import torch

from refusal_tl.cone import ConeRunConfig, run_cone
from refusal_tl.gcg import GcgConfig, run_gcg_pair
from refusal_tl.geometry import RefusalDirection
from refusal_tl.pipeline import suite
from refusal_tl.pipeline.report import benchmark_section, stage_configs, stage_sections, write_report
from refusal_tl.pipeline.stages import evaluate_run
from refusal_tl.profiles import EvalSizes
from refusal_tl.rdo import RdoRunConfig, run_rdo
from refusal_tl.repind import IndependenceResult, RepIndRunConfig, run_repind
from tests.helpers import PROMPTS, write_lm_eval_tasks

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def results(tiny, tmp_path_factory):
    """Real stage results on the tiny model (a stand-in DIM, then RDO, a cone, RepInd and GCG)."""
    run = tmp_path_factory.mktemp("run")
    dim = RefusalDirection(3 * torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0)), 2, -1,
                           tiny.name, tiny.weights_sha)
    dim.save(run / "dim" / "direction.safetensors")
    (run / "dim" / "metadata.json").write_text(json.dumps({"config": {"n_train": 8, "n_val": 4,
                                                                      "filter_prompts": False}}))
    small = dict(model=tiny.name, n_train=8, filter_prompts=False)
    rdo = run_rdo(RdoRunConfig.from_profile("ci", rdo=dict(accumulation=4), **small), run, tiny, progress=False)
    cone = run_cone(ConeRunConfig.from_profile("ci", cone=dict(accumulation=4), dims=(2,), init="random",
                                               filter_samples=3, kl_threshold=100.0, **small), run, tiny,
                    progress=False)
    rep = run_repind(RepIndRunConfig.from_profile("ci", repind=dict(accumulation=4), k=1, **small), run, tiny,
                     progress=False)
    gcg = GcgConfig.from_profile("ci", model=tiny.name, steps=2, aux_layer=2, n_prompts=2)
    gcg_runs = run_gcg_pair(gcg, tiny, rep.directions[0], dim, PROMPTS[:2], run, progress=False)
    perp = run_rdo(RdoRunConfig.from_profile("ci", rdo=dict(accumulation=4), **small), run, tiny, name="rdo-perp",
                   orthogonal_to=[dim], progress=False)
    return {"rdo": rdo, "cone": cone, "repind": IndependenceResult(perp, rep), "gcg": gcg_runs,
            "_dim": SimpleNamespace(direction=dim)}


SMALL = dict(n_eval=3, n_capability=2, max_new_tokens=4, n_sweep=2, n_alphas=2, n_cone_samples=2, n_cone_eval=2,
             n_cone_alphas=2, n_trace=2, answer_lengths=(2, 4))


@pytest.fixture(scope="module")
def evals(tiny, results, tmp_path_factory):
    """The report's evaluations of those stages on the tiny model, cached in a run directory."""
    run = tmp_path_factory.mktemp("evalrun")
    stages = {"dim": results["_dim"]} | {k: v for k, v in results.items() if k != "_dim"}
    bench = dict(bench_tasks=["tiny_ppl"], bench_tasks_dir=str(write_lm_eval_tasks(run / "tasks")),
                 retain_lambdas=[0.0, 1.0], retain_epochs=1, abl_lambdas=[0.0, 1.0], abl_seeds=(42, 43))
    return evaluate_run(stages, tiny, run, EvalSizes.of("ci", **SMALL, **bench)), run, stages


def _stages(results):
    return {k: v for k, v in results.items() if k != "_dim"}


def test_sections_carry_every_stage_and_the_page_is_self_contained(results, tmp_path):
    results = _stages(results)
    sections = stage_sections(results)
    assert [s.title.split(":")[0].split(" (")[0] for s in sections] == \
        ["RDO", "Refusal cones", "Representational independence", "GCG suffixes against RepInd-1"]
    assert all(s.figures and s.tables for s in sections)
    path = write_report(tmp_path / "report.html", sections, "test report", {"stages": stage_configs(results)})
    page = path.read_text()
    assert page.count("plotly.js v") == 1 and "<script src" not in page  # plotly inline, once; nothing fetched
    n_figs = sum(len(s.figures) for s in sections)
    assert len(re.findall(r'class="figure"', page)) == n_figs
    meta = json.loads(re.search(r"<pre id='meta'>(.*?)</pre>", page, re.S).group(1).replace("&quot;", '"'))
    assert set(meta["stages"]) == {"rdo", "cone", "repind", "gcg"}


def test_report_renders_in_headless_chromium_without_console_errors(results, evals, tmp_path):
    if CHROMIUM is None:  # .ci/run installs one and sets REFUSAL_TL_REQUIRE_BROWSER: there a skip is a failure
        if os.environ.get("REFUSAL_TL_REQUIRE_BROWSER"):
            pytest.fail("REFUSAL_TL_REQUIRE_BROWSER is set but no Chromium is installed: apt-get install chromium")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    sections = stage_sections(_stages(results), evals[0])
    path = write_report(tmp_path / "report.html", sections, "test report", {})
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    n_figs = sum(len(s.figures) for s in sections)
    # every figure was drawn by plotly.js (its SVG root exists) and has traces
    assert dom.count('class="main-svg"') >= n_figs, proc.stderr[-2000:]
    assert len(re.findall(r'class="trace', dom)) >= n_figs
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console


def test_evaluations_give_table5_and_the_notebooks_figures(results, evals):
    data, _, _ = evals
    assert set(data) == {"methods", "methods_heretic", "lengths", "sweeps", "retain", "abl_sweep", "benchmarks",
                         "cone_ablate", "cone_induce", "temperatures", "cone_sweep", "repind", "gcg"}
    fig14 = data["abl_sweep"]["rows"]  # one RDO per (λ_abl, seed), ASR under ablation and subtraction
    assert sorted({(r["lambda_abl"], r["lambda_add"], r["seed"]) for r in fig14}) == [
        (0.0, 1.0, 42), (0.0, 1.0, 43), (1.0, 0.0, 42), (1.0, 0.0, 43)]
    assert all(r["lo"] <= r["asr"] <= r["hi"] for r in fig14) and len(fig14) == 8
    assert [(r["condition"], r["tokens"]) for r in data["lengths"]["rows"]][:2] == [("no intervention", 2),
                                                                                   ("no intervention", 4)]
    assert [r["method"] for r in data["methods_heretic"]["rows"]] == ["no intervention", "DIM", "RDO"]
    assert 0 <= data["gcg"]["baseline"] <= 1 and data["gcg"]["prompts"] == PROMPTS[:2]
    assert [r["lambda_ret"] for r in data["retain"]["rows"]] == [0.0, 1.0]  # one trained RDO per λ_ret
    rows = data["methods"]["rows"]
    assert [r["method"] for r in rows] == ["no intervention", "DIM", "RDO"]
    assert all(0 <= r["harmful/ablate"] <= 1 and r["first-token KL"] >= 0 and "capability ΔCE" in r for r in rows[1:])
    sections = stage_sections(_stages(results), data)
    names = {name for s in sections for name in s.figures}
    for fig in ("fig2", "fig14", "answer_length", "fig15", "fig22", "fig3", "fig18", "fig5", "fig20", "fig6", "fig7",
                "fig8", "interference"):
        assert any(fig in n for n in names), (fig, names)
    table = next(s for s in sections if "Table 5" in s.title).tables[0]
    assert list(table.method) == ["no intervention", "DIM", "RDO"] and table.shape[1] == 6
    # every figure has data: at least one trace (or a heat-map / table)
    assert all(len(f.data) > 0 for s in sections for f in s.figures.values())
    bench = next(s for s in sections if "lm-eval" in s.title).tables[0]  # paper Table 4's shape
    assert {"DIM", "RDO", "no intervention"} <= set(bench.columns) and list(bench.task) == ["tiny_ppl"]
    assert len({bench[c].iloc[0] for c in ("DIM", "RDO", "no intervention")}) == 3
    cone = next(s for s in sections if s.title.startswith("Refusal cones")).tables[1]  # [0]: training
    assert 0 <= cone.share_halving_refusal.iloc[0] <= 1 and cone.samples_evaluated.iloc[0] == SMALL["n_cone_samples"]


def test_a_second_evaluation_reads_the_cache_and_a_changed_direction_recomputes(tiny, evals, monkeypatch):
    data, run, stages = evals
    mod = suite

    def boom(*a, **k):
        raise AssertionError("generated although cached")
    for name in ("method_table", "cone_rates", "temperature_curves", "sweeps", "cone_sweep", "repind_rates",
                 "lm_eval_scores", "retain_sweep", "ablation_weight_sweep", "length_curve", "protocol_table"):
        monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr(mod.Answers, "answers", boom)  # not one completion generated (GCG's baseline included)
    bench = dict(bench_tasks=["tiny_ppl"], bench_tasks_dir=str(write_lm_eval_tasks(run / "tasks")),
                 retain_lambdas=[0.0, 1.0], retain_epochs=1, abl_lambdas=[0.0, 1.0], abl_seeds=(42, 43))
    s = EvalSizes.of("ci", **SMALL, **bench)
    assert evaluate_run(stages, tiny, run, s) == data
    monkeypatch.undo()  # lm-eval without its data (here: a task nobody has): the report says why, nothing breaks
    missing = evaluate_run(stages, tiny, run, s.replace(bench_tasks=("no_such_task",)))["benchmarks"]
    assert "unknown lm-eval task(s) no_such_task" in missing["unavailable"]
    section = benchmark_section(missing)
    assert section.text.startswith("Not run: unknown lm-eval task") and not section.tables
    for name in ("method_table", "cone_rates", "temperature_curves", "sweeps", "cone_sweep", "repind_rates"):
        monkeypatch.setattr(mod, name, boom)
    moved = SimpleNamespace(direction=RefusalDirection(stages["dim"].direction.vector.flip(0), 2, -1, tiny.name,
                                                        tiny.weights_sha))
    with pytest.raises(AssertionError, match="generated although cached"):
        evaluate_run(stages | {"dim": moved}, tiny, run, s)
