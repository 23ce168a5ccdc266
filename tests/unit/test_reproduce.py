"""`refusal-tl reproduce`: the stage plan, per-stage timings and memory, interrupted runs, changed settings."""

import json
from types import SimpleNamespace

import pytest
import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalDirection
from refusal_tl.pipeline import reproduce as rp
from refusal_tl.pipeline import stages as st
from refusal_tl.pipeline.memory import PeakMemory
from refusal_tl.pipeline.reproduce import ReproduceConfig, reproduce


def test_plan_adds_the_stages_a_stage_reads_in_the_papers_order():
    assert ReproduceConfig(stages=("gcg",)).plan() == ["dim", "repind", "gcg"]
    assert ReproduceConfig(stages=("cone", "dim")).plan() == ["dim", "rdo", "cone"]
    assert ReproduceConfig().plan() == ["dim", "rdo", "cone", "repind", "gcg"]


@pytest.mark.parametrize("kw,match", [(dict(stages=("dim", "cones")), "unknown stage 'cones'"),
                                      (dict(profile="laptop"), "unknown profile 'laptop'"),
                                      (dict(stages=()), "no stages"),
                                      (dict(overrides={"rdoo": {}}), "unknown stage 'rdoo'"),
                                      (dict(overrides={"eval": {"n_evl": 3}}), "unknown evaluation size"),
                                      (dict(dtype="fp8"), "unknown dtype 'fp8'")])
def test_bad_configs_are_one_line_errors(kw, match):
    with pytest.raises(RefusalTLError, match=match):
        ReproduceConfig(**kw)


def test_peak_memory_sees_an_allocation_inside_the_block():
    import mmap

    with PeakMemory(interval=0.01) as before:
        pass
    with PeakMemory(interval=0.01) as mem:
        # 300 MiB of fresh pages, released before the block ends. (malloc could hand back memory the
        # process already holds after the bundled-model tests, which would not raise the RSS.)
        block = mmap.mmap(-1, 300 * 2**20)
        for i in range(0, len(block), mmap.PAGESIZE):
            block[i] = 1
        block.close()
    assert mem.peak - before.peak > 250 * 2**20
    assert mem.summary()["peak_rss_gb"] > 0.25


def test_stages_run_in_order_and_timings_survive_an_interrupt(tiny, tmp_path, monkeypatch):
    seen = []

    def runner(name, fail=False):
        def run(cfg, profile, run_dir, model, done, overrides, progress):
            assert list(done) == seen  # every earlier stage's result is handed on
            if fail:
                raise KeyboardInterrupt
            seen.append(name)
            return name.upper()
        return run

    reports, evaluated = [], []
    monkeypatch.setattr(rp, "report", lambda res, cfg, model: reports.append(list(res.results)))
    monkeypatch.setattr(rp, "evaluate_run", lambda results, model, run_dir, s: evaluated.append(list(results)) or {})
    monkeypatch.setattr(st, "RUNNERS", {s: runner(s, fail=(s == "cone")) for s in st.STAGES})
    with pytest.raises(KeyboardInterrupt):
        reproduce(ReproduceConfig(model="tiny", profile="ci"), tmp_path, tiny, progress=False)
    saved = json.loads((tmp_path / "timings.json").read_text())
    assert list(saved["stages"]) == ["load", "dim", "rdo"]  # what finished before the interrupt is on disk
    assert reports == []  # no report from an interrupted run
    assert all(t["seconds"] >= 0 and t.get("peak_rss_gb", 1) > 0 for t in saved["stages"].values())

    monkeypatch.setattr(st, "RUNNERS", {s: runner(s) for s in st.STAGES})
    seen.clear()
    res = reproduce(ReproduceConfig(model="tiny", profile="ci", stages=("gcg",)), tmp_path, tiny, progress=False)
    assert seen == ["dim", "repind", "gcg"] and res.results["gcg"] == "GCG"
    saved = json.loads((tmp_path / "timings.json").read_text())
    assert list(saved["stages"]) == ["load", "dim", "repind", "gcg", "evaluate"]  # the evaluation after every stage
    assert saved["config"]["stages"] == ["gcg"] and saved["weights_sha"] == tiny.weights_sha
    assert reports == [["dim", "repind", "gcg"]] and evaluated == reports  # one report, from every stage's result

    seen.clear()
    reproduce(ReproduceConfig(model="tiny", profile="ci", stages=("dim",), evaluate=False), tmp_path, tiny,
              progress=False)
    assert list(json.loads((tmp_path / "timings.json").read_text())["stages"]) == ["load", "dim"]
    assert len(evaluated) == 1  # --no-eval: no evaluation, still a report
    assert ReproduceConfig(overrides={"eval": {"n_eval": 4}}).sizes().n_eval == 4


def test_a_changed_setting_recomputes_its_stage_only_and_switching_back_reuses_the_earlier_run(
        tiny, tmp_path, monkeypatch):
    """RepInd's learning rate changes: RepInd retrains, RDO and RDO⊥ are reused (their step
    records, timings included, are the stored ones); the first setting again reuses its run."""
    dim = RefusalDirection(3 * torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0)), 2, -1,
                           tiny.name, tiny.weights_sha)
    dim.save(tmp_path / "dim" / "direction.safetensors")
    (tmp_path / "dim" / "metadata.json").write_text(json.dumps({"config": {"n_train": 8, "n_val": 4,
                                                                           "filter_prompts": False}}))
    monkeypatch.setitem(st.RUNNERS, "dim", lambda *a: SimpleNamespace(direction=dim))
    monkeypatch.setattr(rp, "report", lambda res, cfg, model: None)

    def run(lr: float) -> dict:
        small = dict(n_train=8, filter_prompts=False)
        overrides = {"rdo": dict(small, rdo=dict(accumulation=4)),
                     "repind": dict(small, k=1, repind=dict(accumulation=4, lr=lr))}
        cfg = ReproduceConfig(model=tiny.name, profile="ci", stages=("rdo", "repind"), evaluate=False,
                              overrides=overrides)
        res = reproduce(cfg, tmp_path, tiny, progress=False).results
        return {"rdo": res["rdo"].run.history, "rdo-perp": res["repind"].perp.run.history,
                "repind": res["repind"].repind.directions[0].vector}

    first = run(1e-2)
    second = run(5e-2)
    assert second["rdo"] == first["rdo"] and second["rdo-perp"] == first["rdo-perp"]  # reused, not retrained
    assert not torch.equal(second["repind"], first["repind"])
    assert len(list((tmp_path / "repind-1").glob("candidate0-*.safetensors"))) == 1  # the first run, kept aside
    third = run(1e-2)
    torch.testing.assert_close(third["repind"], first["repind"], atol=0, rtol=0)
