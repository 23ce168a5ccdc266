"""The bundled Qwen2.5-Coder-0.5B-Instruct end to end (minutes; needs the bundled extra)."""

import pytest
import torch

from refusal_tl import data
from refusal_tl.config import DimConfig
from refusal_tl.evaluate import evaluate_intervention, first_token_kl
from refusal_tl.model import load_model
from refusal_tl.pipeline import run_dim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen():
    return load_model("bundled")


@pytest.fixture(scope="module")
def dim_run(qwen, tmp_path_factory):
    return run_dim(DimConfig.from_profile("ci"), tmp_path_factory.mktemp("run"), qwen)


def test_qwen_chat_format(qwen):
    chat = qwen.chat
    assert chat.n_eoi == 5
    assert qwen.tokenizer.convert_ids_to_tokens(chat.eoi_ids) == ["<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ"]
    assert chat.refusal_ids == [40, 2121]
    assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in chat.prefix
    ids = chat.tokenize(["hi"]).ids[0]
    assert qwen.tokenizer.convert_ids_to_tokens(int(ids[0])) == "<|im_start|>"  # no BOS


def test_dim_run_writes_everything(dim_run):
    out = dim_run.run_dir
    for name in ("direction.safetensors", "direction.json", "selection.csv", "metadata.json",
                 "candidates.safetensors", "figures/selection_landscape.html"):
        assert (out / name).is_file(), name
    assert dim_run.direction.layer < int(24 * 0.8)
    assert dim_run.direction.vector.shape == (896,)
    assert dim_run.selection.best.bypass < dim_run.selection.baseline_bypass


def test_ablation_lowers_refusal_on_held_out_harmful(qwen, dim_run):
    prompts = data.bundled("harmful", "test", 24)
    base = evaluate_intervention(qwen, prompts, max_new_tokens=24)
    ablated = evaluate_intervention(qwen, prompts, dim_run.direction, "ablate", max_new_tokens=24)
    print(f"refusal rate: baseline {base.rate:.2f}, ablated {ablated.rate:.2f}")
    assert base.rate >= 0.2  # the model refuses a good share of blatant requests
    assert ablated.rate <= base.rate / 2


def test_ablation_keeps_harmless_first_token(qwen, dim_run):
    # the selection's own estimate obeys the filter; held out, the small ci profile's
    # noisier pick may exceed 0.1 (the cpu profile is measured against 0.1 in the README)
    assert dim_run.selection.best.kl <= 0.1
    kl = first_token_kl(qwen, data.bundled("harmless", "test", 16), dim_run.direction)
    assert 0 <= kl <= 0.3


def test_rerun_resumes_from_checkpoints(qwen, dim_run):
    again = run_dim(dim_run.config, dim_run.run_dir.parent, qwen)
    assert again.seconds["extract"] < 5 and again.seconds["select"] < 60
    torch.testing.assert_close(again.direction.vector, dim_run.direction.vector)


@pytest.fixture(scope="module")
def rdo_run(qwen, dim_run):
    from refusal_tl.rdo_pipeline import RdoRunConfig, run_rdo

    return run_rdo(RdoRunConfig.from_profile("ci"), dim_run.run_dir.parent, qwen, progress=False)


def test_rdo_run_writes_direction_history_and_figures(rdo_run, dim_run):
    out = rdo_run.run_dir
    for name in ("direction.safetensors", "direction.json", "history.json", "metadata.json", "train.pt",
                 "figures/rdo_loss_curves.html"):
        assert (out / name).is_file(), name
    d = rdo_run.direction
    assert d.method == "rdo" and d.layer == dim_run.direction.layer
    assert d.norm == pytest.approx(dim_run.direction.norm, rel=1e-5)  # α·r̂ with α = ‖DIM‖
    assert rdo_run.info["pairs"] >= 8 and rdo_run.run.step == len(rdo_run.run.history) >= 1
    assert all(h[k] >= 0 for h in rdo_run.run.history for k in ("abl", "add", "ret"))
    assert rdo_run.info["targets"]["answer"]["n"] == rdo_run.info["pairs"]
    assert rdo_run.info["refusal_targets"] == "refusing"  # ci profile: L_add on refusing t_refusal only
    assert 0 < rdo_run.info["refusal_targets_refusing"] <= rdo_run.info["pairs"]


def test_rdo_training_lowers_its_loss_on_the_real_model(qwen, dim_run, tmp_path):
    """Three steps of RDO on the bundled model lower the loss below the random start."""
    from refusal_tl.rdo import RdoConfig, train_rdo
    from refusal_tl.rdo_pipeline import training_pairs

    pairs, _ = training_pairs(qwen, dim_run.direction, n=48, cache_dir=dim_run.run_dir.parent / "rdo")
    run = train_rdo(qwen, pairs[:4], dim_run.direction.norm, dim_run.direction.layer,
                    RdoConfig(accumulation=4, epochs=3, lr=5e-2), progress=False)
    losses = [h["train_loss"] for h in run.history]
    print("RDO losses on 4 pairs:", [round(x, 3) for x in losses])
    assert losses[-1] < losses[0]


def test_rdo_same_seed_and_resume_give_the_same_direction(qwen, rdo_run, dim_run, tmp_path):
    from refusal_tl.rdo_pipeline import run_rdo

    other = tmp_path / "resumed"
    (other / "dim").mkdir(parents=True)
    for f in (dim_run.run_dir / "direction.safetensors", dim_run.run_dir / "metadata.json"):
        (other / "dim" / f.name).write_bytes(f.read_bytes())
    (other / "rdo").mkdir()
    for f in rdo_run.run_dir.glob("targets-*.json"):  # deterministic; saves regenerating them
        (other / "rdo" / f.name).write_bytes(f.read_bytes())
    cfg = rdo_run.config
    run_rdo(type(cfg)(**{**cfg.__dict__, "max_steps": 1}), other, qwen, progress=False)  # interrupted after 1 step
    resumed = run_rdo(cfg, other, qwen, progress=False)
    assert resumed.run.step == rdo_run.run.step
    cos = torch.nn.functional.cosine_similarity(resumed.direction.vector, rdo_run.direction.vector, dim=0)
    assert cos >= 0.999
