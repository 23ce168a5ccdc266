"""RDO on the bundled model end to end, ci profile (minutes)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from refusal_tl.geometry import RefusalDirection
from refusal_tl.rdo import run_rdo

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"


def test_same_direction_as_before_the_shared_trainer(rdo_run32):
    """``golden/rdo_ci.safetensors``: the ci-profile RDO direction written by commit f61d55b
    (its own training loop, pickled checkpoints) from the same DIM direction (float32)."""
    old = RefusalDirection.load(GOLDEN / "rdo_ci.safetensors")
    cos = torch.nn.functional.cosine_similarity(rdo_run32.direction.vector, old.vector, dim=0)
    print(f"cosine with the pre-refactor ci direction: {float(cos):.7f}")
    assert cos >= 0.9999
    assert rdo_run32.direction.provenance.step == old.provenance.step


def test_rdo_run_writes_direction_history_and_figures(rdo_run, dim_run):
    out = rdo_run.run_dir
    for name in ("direction.safetensors", "direction.json", "history.json", "metadata.json",
                 "checkpoint.safetensors", "figures/rdo_loss_curves.html"):
        assert (out / name).is_file(), name
    d = rdo_run.direction
    assert d.method == "rdo" and d.layer == dim_run.direction.layer
    assert d.norm == pytest.approx(dim_run.direction.norm, rel=1e-5)  # α·r̂ with α = ‖DIM‖
    assert rdo_run.info["pairs"] >= 8 and rdo_run.run.step == len(rdo_run.run.history) >= 1
    losses = [h["train_loss"] for h in rdo_run.run.history]
    assert rdo_run.direction.provenance.train_loss == min(losses)  # lowest-loss selection
    assert rdo_run.info["targets"]["answer"]["n"] == rdo_run.info["pairs"]
    assert rdo_run.info["refusal_targets"] == "refusing"  # ci profile: L_add on refusing t_refusal only
    assert 0 < rdo_run.info["refusal_targets_refusing"] <= rdo_run.info["pairs"]


def test_rdo_training_lowers_its_loss_on_the_real_model(qwen, dim_run, tmp_path):
    """Three steps of RDO on the bundled model lower the loss below the random start."""
    from refusal_tl.rdo import RdoConfig, train_rdo, training_pairs

    pairs, _ = training_pairs(qwen, dim_run.direction, n=48, cache_dir=dim_run.run_dir.parent / "rdo")
    run = train_rdo(qwen, pairs[:4], dim_run.direction.norm, dim_run.direction.layer,
                    RdoConfig(accumulation=4, epochs=3, lr=5e-2), progress=False)
    losses = [h["train_loss"] for h in run.history]
    print("RDO losses on 4 pairs:", [round(x, 3) for x in losses])
    assert losses[-1] < losses[0]


def test_rdo_same_seed_and_resume_give_the_same_direction(qwen, rdo_run, dim_run, tmp_path):
    other = tmp_path / "resumed"
    (other / "dim").mkdir(parents=True)
    for f in (dim_run.run_dir / "direction.safetensors", dim_run.run_dir / "metadata.json"):
        (other / "dim" / f.name).write_bytes(f.read_bytes())
    (other / "rdo").mkdir()
    for f in rdo_run.run_dir.glob("targets-*.json"):  # deterministic; saves regenerating them
        (other / "rdo" / f.name).write_bytes(f.read_bytes())
    cfg = rdo_run.config
    run_rdo(replace(cfg, max_steps=1), other, qwen, progress=False)  # interrupted after 1 step
    resumed = run_rdo(cfg, other, qwen, progress=False)
    assert resumed.run.step == rdo_run.run.step
    cos = torch.nn.functional.cosine_similarity(resumed.direction.vector, rdo_run.direction.vector, dim=0)
    assert cos >= 0.999
