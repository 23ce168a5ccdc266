"""lm-eval capability benchmarks: local task files (our own few questions), no Hub."""

import json

import pytest
import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.benchmarks import lm_eval_scores
from refusal_tl.export import export_model
from refusal_tl.geometry import RefusalDirection
from tests.helpers import assert_one_line_error, run_cli, write_lm_eval_tasks

pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency: make install")

@pytest.fixture
def task_dir(tmp_path):
    return write_lm_eval_tasks(tmp_path / "tasks")


def direction(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    return RefusalDirection(3 * torch.randn(model.d_model, generator=g), 2, -1, model.name, model.weights_sha)


def test_lm_eval_scores_the_original_and_the_baked_model(tiny, task_dir, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    d = direction(tiny)
    other = direction(tiny, seed=1)
    res = lm_eval_scores(tiny, {"d": [d], "both": [d, other]}, ["tiny_mc", "tiny_ppl"], task_dir=task_dir,
                         lm_eval_tasks=False, batch_size=4)
    assert res.tasks == ["tiny_mc", "tiny_ppl"] and res.headline["tiny_mc"] == "acc,none"
    ppl = {c: res.scores[c]["tiny_ppl"]["perplexity,none"] for c in ("no intervention", "d", "both")}
    assert min(ppl.values()) > 1 and len({round(v, 6) for v in ppl.values()}) == 3  # each ablation reached lm-eval
    abl = ppl["d"]
    assert 0 <= res.scores["d"]["tiny_mc"]["acc,none"] <= 1
    # the ablated condition is the exported model: lm-eval on the folder from disk gives the same numbers
    folder = export_model(tiny, d, tmp_path / "baked")
    disk = simple_evaluate(model="hf", model_args=f"pretrained={folder},dtype=float32", tasks=["tiny_ppl"],
                           task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
                           apply_chat_template=True, device="cpu", batch_size=4)
    assert disk["results"]["tiny_ppl"]["perplexity,none"] == pytest.approx(abl, rel=1e-4)
    with pytest.raises(RefusalTLError, match="need a direction"):
        lm_eval_scores(tiny, {"d": []}, ["tiny_ppl"], task_dir=task_dir, lm_eval_tasks=False)
    table = res.table()
    assert len(table) == 2 * 3 and set(table.condition) == {"no intervention", "d", "both"}
    row = table[(table.task == "tiny_mc") & (table.condition == "d")].iloc[0]
    assert row.change == pytest.approx(row.score - res.scores["no intervention"]["tiny_mc"]["acc,none"])


def test_bench_cli_writes_json_and_names_what_is_missing(tiny_dir, task_dir, tmp_path, capsys, monkeypatch):
    import datasets
    import huggingface_hub

    d = RefusalDirection(3 * torch.randn(32, generator=torch.Generator().manual_seed(0)), 2, -1, "tiny", "tiny")
    d.save(tmp_path / "d.safetensors")
    out = tmp_path / "bench.json"
    base = ["bench", "--model", tiny_dir, "--direction", tmp_path / "d.safetensors", "--tasks-dir", task_dir]
    code, err = run_cli(capsys, *base, "--tasks", "tiny_ppl", "--out", out)
    assert code == 0, err
    saved = json.loads(out.read_text())
    assert saved["tasks"] == ["tiny_ppl"] and saved["scores"]["ablated: dim"]["tiny_ppl"]["perplexity,none"] > 1
    # mistakes: one line each, nothing written
    assert_one_line_error(*run_cli(capsys, *base, "--tasks", "no_such_task", "--out", tmp_path / "x.json"),
                          "unknown lm-eval task(s) no_such_task")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as on a machine without the Hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert_one_line_error(*run_cli(capsys, *base, "--tasks", "arc_challenge", "--out", tmp_path / "y.json"),
                          "download from the Hugging Face Hub")
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
