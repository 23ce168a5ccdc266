"""Figures across run directories: two real runs of the tiny model (float32 and bf16), their
results table and cone samples evaluated and cached, drawn together."""

import json

import pytest
import torch

from helpers import PROMPTS, make_tiny, run_cli
from refusal_tl.cli import main
from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.pipeline.cache import Answers, cached
from refusal_tl.pipeline.compare import compare_figures, load_runs
from refusal_tl.pipeline.suite import cone_rates, method_table


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = []
    g = torch.Generator().manual_seed(3)
    vecs = {"DIM": 3 * torch.randn(32, generator=g), "RDO": 3 * torch.randn(32, generator=g)}
    basis = torch.linalg.qr(torch.randn(32, 2, generator=g))[0].T
    for dtype in (torch.float32, torch.bfloat16):
        model = make_tiny(dtype=dtype)
        run = tmp_path_factory.mktemp(f"run-{model.dtype_name}")
        dirs = {k: RefusalDirection(v, 2, -1, model.name, model.weights_sha, k.lower(), dtype=model.dtype_name)
                for k, v in vecs.items()}
        dirs["DIM"].save(run / "dim" / "direction.safetensors")
        answers = Answers(model, 3)
        table = method_table(model, dirs, PROMPTS[:4], PROMPTS[4:8], answers)
        cached(run, "methods", {}, lambda t=table: t)
        cone = RefusalCone(basis, 2, 3.0, model.name, model.weights_sha)
        rates = cone_rates(model, PROMPTS[:3], {2: cone}, dirs, 3, answers)
        cached(run, "cone_ablate", {}, lambda r=rates: r)
        runs.append(run)
    return runs


def test_figures_across_two_runs(two_runs):
    runs = load_runs(two_runs)
    assert [r.label for r in runs] == ["tiny-qwen (float32)", "tiny-qwen (bfloat16)"]  # model (dtype), from metadata
    figs = compare_figures(runs)
    assert set(figs) == {"fig2_across_runs", "fig10_across_runs", "fig3_across_runs"}
    bars = [t for t in figs["fig2_across_runs"].data if t.type == "bar"]
    assert [t.name for t in bars] == [r.label for r in runs]  # one colour (trace) per run
    assert bars[0].marker.color != bars[1].marker.color
    assert list(bars[0].x) == ["DIM ablation", "DIM subtraction", "RDO ablation", "RDO subtraction"]
    for run, bar in zip(runs, bars):  # the rates are each run's own, with intervals around them
        rows = {r["method"]: r for r in run.evals["methods"]["rows"]}
        assert bar.y[0] == pytest.approx(100 * rows["DIM"]["harmful/ablate"])
        assert all(lo >= 0 for lo in bar.error_y.arrayminus)
    boxes = figs["fig3_across_runs"].data
    assert [b.name for b in boxes] == [r.label for r in runs] and len(boxes[0].y) == 3  # 3 samples of dim 2


def test_compare_cli_and_its_errors(two_runs, tmp_path, capsys):
    out = tmp_path / "compare.html"
    assert main(["compare", *map(str, two_runs), "--labels", "f32,bf16", "--out", str(out)]) == 0
    page = out.read_text()
    assert "f32" in page and "bf16" in page and page.count('class="figure"') == 3
    code, err = run_cli(capsys, "compare", str(tmp_path), "--out", str(tmp_path / "x.html"))
    assert code == 2 and "has no evaluated results" in err
    with pytest.raises(RefusalTLError, match="one label per run"):
        load_runs(two_runs, ["only one"])
    assert json.loads((two_runs[0] / "eval" / "methods.json").read_text())["data"]["rows"][0]["method"] == \
        "no intervention"
