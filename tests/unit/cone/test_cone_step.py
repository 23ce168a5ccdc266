"""The cone step and training (tiny Qwen): reference equality, the 1-D case, sampling, growth, resume."""

import pytest
import torch

from helpers import mixed_pairs, tiny_pairs
from refusal_tl.cone import ConeConfig, grow, train_cone
from refusal_tl.cone.step import cone_step_losses, directions, reference_cone_step, sample_weights
from refusal_tl.geometry import RefusalCone
from refusal_tl.optim import random_rows
from refusal_tl.rdo import RdoConfig, train_rdo
from refusal_tl.rdo.step import Prepared
from refusal_tl.steer.windows import pair_lengths


@pytest.mark.parametrize("sampling", ["orthant", "interpolation"])
def test_cone_step_equals_the_straightforward_step(tiny, sampling):
    pairs = mixed_pairs()
    cfg = ConeConfig(n_samples=2, accumulation=4, micro_batch=3, retain_kl="code", sampling=sampling)
    rows = grow(None, 2, tiny.d_model, 0)
    fast, slow = torch.nn.Parameter(rows.clone()), torch.nn.Parameter(rows.clone())
    group = [0, 2, 3, 1]
    a = cone_step_losses(tiny, fast, 2.0, 1, pairs, group, Prepared(tiny, pairs, 1), pair_lengths(tiny, pairs),
                         cfg, step=3)
    b = reference_cone_step(tiny, slow, 2.0, 1, pairs, group, cfg, step=3)
    for term in a:
        assert a[term] == pytest.approx(b[term], rel=1e-5)
    assert torch.allclose(fast.grad, slow.grad, atol=1e-5 * slow.grad.abs().max())


def test_each_example_gets_its_own_fresh_samples_and_a_step_draws_the_same_again():
    rows = grow(None, 3, 16, 0)
    cfg = ConeConfig(n_samples=2)
    terms = directions(rows, [4, 7], cfg, step=5)
    assert len(terms) == 3 + 2 and [w for w, _ in terms] == [1 / 3] * 3 + [1 / 2] * 2
    r = terms[3][1]([4, 7])
    assert r.shape == (2, 16) and not torch.allclose(r[0], r[1])
    assert torch.equal(r, directions(rows, [4, 7], cfg, step=5)[3][1]([4, 7]))
    assert not torch.allclose(r, directions(rows, [4, 7], cfg, step=6)[3][1]([4, 7]))
    cone = RefusalCone(rows, 0, 1.0, "m", "sha")
    assert cone.contains(r).all()


def test_sample_weights_orthant_and_interpolation():
    w = sample_weights(500, 2, 3, seed=0)
    assert (w >= 0).all() and torch.allclose(w.norm(dim=-1), torch.ones(500, 2))
    w = sample_weights(500, 2, 3, seed=0, how="interpolation")
    assert (w > 0).all() and torch.allclose(w.sum(-1), torch.ones(500, 2))


def test_one_dimensional_cone_is_rdo_step_for_step(tiny):
    """Algorithm 2 with N = 1 has no samples (they would all be b_1): it is Algorithm 1."""
    pairs = mixed_pairs()
    kw = dict(accumulation=2, epochs=2, lr=5e-2, micro_batch=3, retain_kl="code")
    rdo = train_rdo(tiny, pairs, 3.0, 2, RdoConfig(**kw), progress=False)
    cone = train_cone(tiny, pairs, 3.0, 2, random_rows(1, tiny.d_model, 42), ConeConfig(n_samples=8, **kw),
                      progress=False)
    assert cone.step == rdo.step > 2
    for a, b in zip(cone.history, rdo.history):
        for term in ("abl", "add", "ret", "train_loss", "lr"):
            assert a[term] == pytest.approx(b[term], rel=1e-6)
    for a, b in zip(cone.vectors, rdo.vectors):
        assert torch.allclose(a, b, atol=1e-6)


def test_training_keeps_the_basis_orthonormal_and_lowers_the_loss(tiny):
    cfg = ConeConfig(n_samples=2, accumulation=2, epochs=4, lr=5e-2, retain_kl="code")
    run = train_cone(tiny, mixed_pairs(), 3.0, 2, grow(None, 3, tiny.d_model, 1), cfg, progress=False)
    for v in run.vectors:
        assert torch.allclose(v @ v.T, torch.eye(3), atol=1e-5)
    losses = [h["train_loss"] for h in run.history]
    assert min(losses[2:]) < losses[0]


def test_grow_keeps_the_previous_rows_first():
    prev = grow(None, 2, 16, 0)
    new = grow(prev, 3, 16, 1)
    assert torch.allclose(new[:2], prev, atol=1e-6)
    assert torch.allclose(new @ new.T, torch.eye(3), atol=1e-5)
    with pytest.raises(ValueError):
        grow(new, 2, 16, 0)


def test_resume_equals_uninterrupted(tiny, tmp_path):
    cfg = ConeConfig(n_samples=2, accumulation=2, epochs=2, lr=5e-2, retain_kl="code")
    init = grow(None, 2, tiny.d_model, 3)
    whole = train_cone(tiny, tiny_pairs(), 3.0, 2, init, cfg, progress=False)
    ckpt = tmp_path / "checkpoint.safetensors"
    part = train_cone(tiny, tiny_pairs(), 3.0, 2, init, cfg, ckpt, max_steps=2, progress=False)
    assert part.step == 2 < whole.step
    resumed = train_cone(tiny, tiny_pairs(), 3.0, 2, init, cfg, ckpt, progress=False)
    assert resumed.step == whole.step
    assert torch.equal(resumed.rows, whole.rows)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    other = train_cone(tiny, tiny_pairs(), 3.0, 2, grow(None, 2, tiny.d_model, 4), cfg, ckpt, progress=False)
    assert other.step == whole.step and not torch.equal(other.rows, whole.rows)  # another start: trained afresh
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 1  # the first start's run kept aside
