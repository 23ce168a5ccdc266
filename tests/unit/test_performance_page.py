"""docs/performance.md is rendered from what the benchmarks write: a ratio, its spread, its target."""
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from render_performance import render  # noqa: E402
from timing import Results  # noqa: E402


def test_results_json_renders_as_a_table_row_with_its_target(tmp_path):
    res = Results("toy", "A toy benchmark", "2 rounds")
    res.ratio("forward", {"float32": [2.0, 4.2], "bfloat16": [1.0, 2.0]}, "float32", "bfloat16", ">= 1.7",
              note="KL 0.001")
    res.ratio("decode", {"float32": [1.0, 1.0], "bfloat16": [1.0, 1.0]}, "float32", "bfloat16", ">= 1.5")
    doc = json.loads(res.write(tmp_path).read_text())
    assert doc["rows"][0]["median"] == 2.05 and doc["rows"][0]["met"] and not doc["rows"][1]["met"]
    assert {"cpu", "threads", "avx512_bf16", "torch"} <= set(doc["machine"])
    page = render(tmp_path)
    assert "## A toy benchmark" in page and "`benchmarks/toy`" in page
    assert "| forward (KL 0.001) | float32 / bfloat16 | **2.05×** (2.00–2.10, n=2) |" in page
    assert ">= 1.7 met" in page and ">= 1.5 **not met**" in page


def test_a_run_s_stage_times_render_as_their_own_table(tmp_path):
    res = Results("reproduce-cpu", "reproduce, cpu profile", "from an empty run directory")
    res.rows = [{"what": "dim", "seconds": 351.4, "peak_rss_gb": 2.2}, {"what": "total", "seconds": 3000.0}]
    res.write(tmp_path)
    page = render(tmp_path)
    assert "| dim | 351 | 5.9 | 2.2 GB |" in page and "| total | 3000 | 50.0 |  |" in page
