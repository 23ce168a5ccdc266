"""`reproduce` on the bundled model (ci profile): it reuses the stages the session already
computed, evaluates them on held-out prompts for the report, and a run killed at a random
moment finishes, when rerun, with the same numbers as the uninterrupted one."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from refusal_tl.geometry import RefusalDirection
from refusal_tl.pipeline.reproduce import ReproduceConfig, reproduce

pytestmark = pytest.mark.slow


def test_reproduce_reuses_dim_and_rdo_evaluates_and_logs_timings(qwen, dim_run, rdo_run):
    run_dir = dim_run.run_dir.parent
    res = reproduce(ReproduceConfig(profile="ci", stages=("rdo",)), run_dir, qwen, progress=False)
    torch.testing.assert_close(res.results["dim"].direction.vector, dim_run.direction.vector)
    torch.testing.assert_close(res.results["rdo"].direction.vector, rdo_run.direction.vector)
    stages = json.loads((run_dir / "timings.json").read_text())["stages"]
    print({k: v["seconds"] for k, v in stages.items()})
    assert list(stages) == ["load", "dim", "rdo", "evaluate"]
    assert all(stages[s]["peak_rss_gb"] > 1.0 for s in ("dim", "rdo"))  # the 0.5B model is resident
    rows = res.evaluations["methods"]["rows"]
    print(rows)
    assert [r["method"] for r in rows] == ["no intervention", "DIM", "RDO"]
    dim_row = rows[1]
    assert dim_row["harmful/ablate"] <= rows[0]["harmful/none"] and dim_row["first-token KL"] < 1.0
    page = (run_dir / "report.html").read_text()
    assert "Table 5" in page and "capability proxy" in page
    n_eval_figs = 6  # DIM's rates, DIM vs RDO, two completion tables, the answer-length curve, Fig. 22
    assert page.count('class="figure"') == len(dim_run.figures()) + len(rdo_run.figures()) + n_eval_figs
    assert (run_dir / "eval" / "methods.json").is_file()


def _tables(page: str) -> list[str]:
    """The report's tables (the numbers), without the timings and configuration block."""
    return re.findall(r"<table.*?</table>", page, re.S)


def test_reproduce_killed_at_a_random_moment_reruns_to_the_same_report(qwen, dim_run, rdo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dim_run.run_dir, run / "dim")
    cmd = [sys.executable, "-m", "refusal_tl.cli", "reproduce", "--out", str(run), "--profile", "ci",
           "--stages", "rdo", "--no-eval"]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    delay = random.Random().uniform(15, 45)  # model load ~10 s; the whole ci RDO stage ~90 s on 2 CPU cores
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < delay:
        time.sleep(0.2)
    print(f"killing after {time.monotonic() - start:.1f} s; files: {sorted(p.name for p in (run / 'rdo').glob('*'))}"
          if (run / "rdo").is_dir() else f"killing after {time.monotonic() - start:.1f} s, before RDO wrote a file")
    assert proc.poll() is None, "the run ended before the kill: raise the delay's range"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "report.html").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    resumed = RefusalDirection.load(run / "rdo" / "direction.safetensors")
    torch.testing.assert_close(resumed.vector, rdo_run.direction.vector, rtol=1e-5, atol=1e-6)
    assert resumed.provenance.step == rdo_run.direction.provenance.step
    reference = tmp_path / "uninterrupted"  # the session's runs, rendered by the same command
    for stage in ("dim", "rdo"):
        shutil.copytree(dim_run.run_dir.parent / stage, reference / stage)
    reproduce(ReproduceConfig(profile="ci", stages=("rdo",), evaluate=False), reference, qwen, progress=False)
    tables = _tables((run / "report.html").read_text())
    assert len(tables) == 2 and tables == _tables((reference / "report.html").read_text())
