"""`reproduce` on the bundled model reuses the stages the session already computed (ci profile)."""

import json

import pytest
import torch

from refusal_tl.reproduce import ReproduceConfig, reproduce

pytestmark = pytest.mark.slow


def test_reproduce_reuses_dim_and_rdo_and_logs_timings(qwen, dim_run, rdo_run):
    run_dir = dim_run.run_dir.parent
    res = reproduce(ReproduceConfig(profile="ci", stages=("rdo",)), run_dir, qwen, progress=False)
    torch.testing.assert_close(res.results["dim"].direction.vector, dim_run.direction.vector)
    torch.testing.assert_close(res.results["rdo"].direction.vector, rdo_run.direction.vector)
    stages = json.loads((run_dir / "timings.json").read_text())["stages"]
    print({k: v["seconds"] for k, v in stages.items()})
    assert list(stages) == ["load", "dim", "rdo"]
    assert all(stages[s]["peak_rss_gb"] > 1.0 for s in ("dim", "rdo"))  # the 0.5B model is resident
    page = (run_dir / "report.html").read_text()
    assert page.count('class="figure"') == len(dim_run.figures()) + len(rdo_run.figures())
    assert f"layer {dim_run.direction.layer}" in page or f"<td>{dim_run.direction.layer}</td>" in page
