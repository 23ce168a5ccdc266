"""The abliteration search on the tiny model: a run directory's sources, the space, resume after a
kill, the front, the pick rule, the figure and the command line."""

import json

import pytest
import torch

from helpers import PROMPTS, assert_one_line_error, run_cli
from refusal_tl.abliterate import search as S
from refusal_tl.abliterate.sources import load_sources
from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.io import save_tensors
from refusal_tl.steer.edit import Edit, edit_hooks
from refusal_tl.steer.forward import last_logits


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def make_run(tiny, run):
    """A run directory as `reproduce` leaves it, with random directions (no training needed here)."""
    L, d = tiny.n_layers, tiny.d_model
    grid = _rand(tiny.chat.n_eoi, L, d, seed=1) * 3
    RefusalDirection(grid[-1, 2], 2, -1, tiny.name, tiny.weights_sha).save(run / "dim" / "direction.safetensors")
    save_tensors(run / "dim" / "candidates.safetensors", {"vectors": grid},
                 {"positions": list(range(-tiny.chat.n_eoi, 0)), "n_harmful": 8, "n_harmless": 8})
    (run / "dim" / "metadata.json").write_text(json.dumps({"config": {"n_train": 8, "n_val": 4,
                                                                      "filter_prompts": False}}))
    for i, name in enumerate(("rdo", "rdo-perp", "repind-1", "repind-2")):
        RefusalDirection(_rand(d, seed=10 + i) * 3, 2, None, tiny.name, tiny.weights_sha, method=name.split("-")[0]
                         ).save(run / name / "direction.safetensors")
    RefusalCone(torch.linalg.qr(_rand(d, 2, seed=20))[0].T, 2, 3.0, tiny.name, tiny.weights_sha).save(
        run / "cone-2" / "basis.safetensors")
    return run


CFG = dict(trials=5, startup_trials=2, n_harmful=4, n_harmless=4, n_sensitive=4, max_new_tokens=4, batch_size=4)


@pytest.fixture
def run(tiny, tmp_path):
    return make_run(tiny, tmp_path / "run")


def test_sources_offer_every_method_and_each_trial_builds_an_edit(tiny, run):
    src = load_sources(run, tiny)
    assert src.kinds() == ["dim", "dim-per-layer", "rdo", "rdo-perp", "cone", "repind"]
    refs = S.reference_params(src, tiny.n_layers)
    assert set(refs) == {"DIM", "RDO", "cone-2", "RepInd-1"}
    # the reference trials are the standard ablations of the methods' directions
    dim = RefusalDirection.load(run / "dim" / "direction.safetensors").vector
    batch = tiny.chat.tokenize(PROMPTS)
    with torch.no_grad():
        for name, want in (("DIM", dim), ("RDO", src.named["rdo"]), ("cone-2", src.cone.basis)):
            got = last_logits(tiny, batch, edit_hooks(tiny, S.edit_of(refs[name], src, tiny.n_layers)))
            torch.testing.assert_close(got, last_logits(tiny, batch, edit_hooks(tiny, Edit.ablation(want, 5))),
                                       atol=1e-5, rtol=1e-5)
    kernel = {"max_weight": 1.0, "max_weight_position": 2.0, "min_weight": 0.5, "min_weight_distance": 2.0}
    base = dict(direction_index=1.5, cone_vector=1, repind_k=2, biprojection=False, norm_preserving=False,
                kernel="heretic",
                **{f"{c}.{k}": v for c in ("attn", "mlp") for k, v in kernel.items()})
    shapes = {}
    for kind in src.kinds():
        for bi in (False, True):
            edit = S.edit_of({**base, "source": kind, "biprojection": bi}, src, tiny.n_layers)
            shapes[kind] = edit.bases.shape
            if bi and kind != "repind":  # biprojected: orthogonal to the harmless mean of its layer
                layer = 2 if kind not in ("dim", "dim-per-layer") else None
                if layer is not None:
                    assert abs(float(edit.bases[0, 0] @ src.harmless_means[layer])) < 1e-4
    assert shapes["repind"][1] == 2 and shapes["rdo"][1] == 1
    per_layer = S.edit_of({**base, "source": "dim-per-layer"}, src, tiny.n_layers)
    assert not torch.allclose(per_layer.bases[0], per_layer.bases[1])
    w = S.edit_of({**base, "source": "rdo"}, src, tiny.n_layers).attn
    torch.testing.assert_close(w, torch.tensor([0.5, 0.75, 1.0, 0.75, 0.5]))  # kernel at 2, min 0.5 at distance 2


def test_search_resumes_after_a_kill_with_the_same_trials(tiny, run, tmp_path, monkeypatch):
    """The first four trials are the methods' standard ablations (enqueued), then TPE; a search killed
    in its sixth trial and resumed ends with the same trials as one that ran through."""
    cfg = S.SearchConfig(**{**CFG, "trials": 7})
    whole = S.run_search(cfg, run, tiny, progress=False)
    assert len(whole.trials) == 7 and (run / "search" / "journal.log").is_file()
    assert (run / "search" / "figures" / "pareto.html").is_file()
    assert [t.get("reference") for t in whole.trials[:5]] == ["DIM", "RDO", "cone-2", "RepInd-1", None]
    assert set(whole.defaults) == {"DIM", "RDO", "cone-2", "RepInd-1"}

    other = make_run(tiny, tmp_path / "killed")
    real, calls = S.Scorer.__call__, {"n": 0}

    def dies_in_the_sixth_trial(self, edit):
        if edit is not None:
            calls["n"] += 1
            if calls["n"] == 6:
                raise KeyboardInterrupt
        return real(self, edit)

    monkeypatch.setattr(S.Scorer, "__call__", dies_in_the_sixth_trial)
    with pytest.raises(KeyboardInterrupt):
        S.run_search(cfg, other, tiny, progress=False)
    monkeypatch.setattr(S.Scorer, "__call__", real)
    resumed = S.run_search(cfg, other, tiny, progress=False)
    strip = lambda r: [(t["number"], t["params"], t["refusals"], round(t["kl"], 6)) for t in r.trials]
    assert strip(resumed) == strip(whole)


def test_front_and_pick_rule():
    trials = [{"number": i, "params": {"source": "dim"}, "refusals": r, "kl": k, "seconds": 1.0}
              for i, (r, k) in enumerate([(5, 0.01), (2, 0.05), (2, 0.03), (0, 0.4), (3, 0.5), (0, 0.2)])]
    res = S.SearchResult(trials, {}, {"refusals": 8.0, "kl": 0.0}, {"objectives": ["refusals", "kl"]},
                         {"harmful": 8, "harmless": 8})
    assert [t["number"] for t in res.front()] == [5, 2, 0]
    assert res.pick()["number"] == 5  # the fewest refusals reached (0), lowest KL among them
    assert res.pick(2)["number"] == 2 and res.pick(5)["number"] == 0
    with pytest.raises(RefusalTLError, match="raise --max-refusals"):
        res.pick(-1)
    assert res.trial("best", 2)["number"] == 2 and res.trial(4)["number"] == 4


def test_a_changed_search_in_the_same_folder_is_a_clear_error(tiny, run):
    S.run_search(S.SearchConfig(**{**CFG, "trials": 2}), run, tiny, progress=False)
    again = S.run_search(S.SearchConfig(**{**CFG, "trials": 3}), run, tiny, progress=False)  # more trials: resumes
    assert len(again.trials) == 3
    with pytest.raises(RefusalTLError, match="other settings"):
        S.run_search(S.SearchConfig(**{**CFG, "n_harmful": 3}), run, tiny, progress=False)


def test_config_errors_name_the_fix():
    with pytest.raises(RefusalTLError, match="unknown objective 'speed'"):
        S.SearchConfig(objectives=("refusals", "kl", "speed"))
    with pytest.raises(RefusalTLError, match="must include refusals and kl"):
        S.SearchConfig(objectives=("kl",))
    assert S.SearchConfig.from_profile("ci").trials == 6


def test_search_command(tiny_dir, tmp_path, capsys):
    from refusal_tl.model.load import load_model

    model = load_model(str(tiny_dir), "cpu", "float32")
    run = make_run(model, tmp_path / "run")
    from refusal_tl.cli import main

    assert main(["search", "--model", str(tiny_dir), "--dtype", "float32", "--run", str(run), "--profile", "ci",
                 "--trials", "5", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "5 trials" in out and "picked trial" in out and "DIM ablation" in out
    code, err = run_cli(capsys, "search", "--model", str(tiny_dir), "--run", str(tmp_path / "none"), "--profile", "ci")
    assert_one_line_error(code, err, "no DIM direction")


@pytest.mark.parametrize("fmt", ["hf", "lora"])
def test_export_from_search_equals_the_trials_hooks(tiny_dir, tmp_path, capsys, fmt):
    """`export --from-search RUN/search --trial best` bakes (or adapts) exactly the picked trial's edit."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from helpers import PROMPTS
    from refusal_tl.cli import main
    from refusal_tl.model.load import load_model
    from refusal_tl.steer.edit import edit_hooks
    from refusal_tl.steer.forward import last_logits

    model = load_model(str(tiny_dir), "cpu", "float32")
    run = make_run(model, tmp_path / "run")
    res = S.run_search(S.SearchConfig(**{**CFG, "trials": 3}), run, model, progress=False)
    out = tmp_path / f"export-{fmt}"
    assert main(["export", "--model", str(tiny_dir), "--dtype", "float32", "--from-search", str(run / "search"),
                 "--trial", "best", "--format", fmt, "--out", str(out)]) == 0
    assert f"search trial {res.pick()['number']}" in capsys.readouterr().out
    edit = S.trial_edit(S.SearchResult.load(run / "search"), res.pick(), model)
    batch = model.chat.tokenize(PROMPTS, share_prefix=False)
    with torch.no_grad():
        hooked = last_logits(model, batch, edit_hooks(model, edit))
        hf = (AutoModelForCausalLM.from_pretrained(out) if fmt == "hf" else
              PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), out))
        got = hf(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1].float()
    atol = 1e-4 if fmt == "hf" or not edit.norm_preserving else None
    if atol:
        torch.testing.assert_close(got, hooked, atol=atol, rtol=1e-4)
    else:  # a rank-3 adapter of a norm-preserving edit: close, with the error it reports
        info = json.loads((out / "refusal_tl_export.json").read_text())
        assert 0 < info["lora_relative_error"]["max"] < 1
        assert (got - hooked).abs().max() < (hooked - last_logits(model, batch)).abs().max()


def test_over_refusal_as_a_third_objective(tiny, run):
    res = S.run_search(S.SearchConfig(**{**CFG, "trials": 5, "objectives": ("refusals", "kl", "over_refusal")}),
                       run, tiny, progress=False)
    assert all("over_refusal" in t and 0 <= t["over_refusal"] <= CFG["n_sensitive"] for t in res.trials)
    assert "over_refusal" in res.baseline and res.front()
