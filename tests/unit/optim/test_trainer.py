"""The shared sphere trainer on a synthetic loss: no model needed."""

from pathlib import Path

import pytest
import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.optim import TrainConfig, random_rows, train_sphere

TARGETS = torch.nn.functional.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(3)), dim=-1)


def alignment_loss(rows: torch.nn.Parameter, group: list[int], step: int = 0) -> dict[str, float]:
    """Each row should point at the mean target of the group (a smooth loss with a clear optimum)."""
    with torch.enable_grad():
        target = TARGETS[group].mean(0)
        loss = -(rows @ target).sum() + 0.1 * (rows.sum(0) ** 2).sum()
        loss.backward()
    return {"align": float(loss.detach()) + 10.0}  # keep it positive, like the real terms


def train(tmp_path=None, k=2, how="gram_schmidt", max_steps=None, seed=0, **cfg):
    cfg = TrainConfig(**{"accumulation": 4, "epochs": 3, "lr": 5e-2, "seed": seed, **cfg})
    ckpt = None if tmp_path is None else Path(tmp_path) / "ckpt.safetensors"
    return train_sphere(random_rows(k, 8, seed, orthogonalise=how), len(TARGETS), alignment_loss, cfg,
                        key={"test": 1}, orthogonalise=how, checkpoint=ckpt, max_steps=max_steps, progress=False)


def test_gram_schmidt_rows_stay_orthonormal_and_loss_falls():
    run = train(k=3)
    assert run.step == 9 and len(run.vectors) == 9
    for v in run.vectors:
        torch.testing.assert_close(v @ v.T, torch.eye(3), atol=1e-5, rtol=0)
    losses = [h["train_loss"] for h in run.history]
    assert min(losses[-3:]) < losses[0]


def test_normalise_keeps_each_row_unit_and_constraints_hold():
    cons = torch.randn(1, 8)
    cfg = TrainConfig(accumulation=4, epochs=2)
    run = train_sphere(random_rows(1, 8, 0, cons), 12, alignment_loss, cfg, key={}, constraints=cons, progress=False)
    for v in run.vectors:
        assert abs(float(v.norm()) - 1) < 1e-5 and abs(float(v @ cons[0])) < 1e-5


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    full = train()
    part = train(tmp_path, max_steps=4)
    assert part.step == 4
    resumed = train(tmp_path)
    assert resumed.step == full.step
    torch.testing.assert_close(resumed.rows, full.rows, atol=0, rtol=0)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.plateau == full.plateau and resumed.lr == full.lr


def test_changed_settings_train_afresh_keep_the_other_run_and_switching_back_resumes(tmp_path):
    part = train(tmp_path, max_steps=2)  # interrupted after two steps
    other = train(tmp_path, seed=1)  # another seed: trained from scratch, not an error
    alone = train(seed=1)
    assert other.step == alone.step and torch.equal(other.rows, alone.rows)
    assert len(list(tmp_path.glob("ckpt-*.safetensors"))) == 1  # the first settings' run, kept aside
    back = train(tmp_path)  # the first settings again: resumes after its two steps
    assert back.history[:2] == part.history  # the same records, timings included: not recomputed
    torch.testing.assert_close(back.rows, train().rows, atol=0, rtol=0)
    assert len(list(tmp_path.glob("ckpt-*.safetensors"))) == 1  # now seed 1's run is the one aside
    assert train(tmp_path, seed=1).history == other.history  # and it is reused as it was


def test_corrupt_checkpoint_gives_one_line_error(tmp_path):
    (tmp_path / "ckpt.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(RefusalTLError, match="not a readable training checkpoint") as err:
        train(tmp_path)
    assert "\n" not in str(err.value)


def test_too_few_examples_for_one_step():
    with pytest.raises(RefusalTLError, match="at least 16 examples"):
        train_sphere(random_rows(1, 8, 0), 3, alignment_loss, TrainConfig(), key={}, progress=False)


def test_the_package_never_unpickles():
    root = Path(__file__).resolve().parents[3] / "refusal_tl"
    banned = ("torch.load(", "import pickle")
    offenders = [str(p) for p in root.rglob("*.py") if any(s in p.read_text() for s in banned)]
    assert offenders == []
