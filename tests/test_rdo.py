import torch

from conftest import PROMPTS
from refusal_tl.rdo import Plateau, rdo_losses, tangent


def test_tangent_projection_keeps_unit_norm_to_first_order():
    r = torch.randn(16)
    r = r / r.norm()
    g = tangent(torch.randn(16), r)
    assert abs(float(g @ r)) < 1e-6
    step = r - 1e-3 * g
    assert abs(float(step.norm()) - 1.0) < 1e-5


def test_plateau_schedule_reduces_twice_then_stops():
    p = Plateau(patience=2, max_reductions=2)
    events = [p.step(x) for x in [3.0, 2.0, 2.5, 2.5, 2.4, 2.6, 1.0, 1.5, 1.5, 1.5, 1.5]]
    assert events == ["ok", "ok", "ok", "reduce", "ok", "reduce", "ok", "ok", "stop", "ok", "stop"]


def test_losses_are_finite_and_reach_the_direction(tiny):
    r = torch.nn.Parameter(torch.randn(tiny.d_model))
    batch = {"answer": (PROMPTS[:2], [" Sure here is how", " Sure"]),
             "refusal": (PROMPTS[2:4], [" I cannot help", " As"]),
             "retain": (PROMPTS[4:6], [" the sea is", " rice cook"])}
    with torch.enable_grad():
        parts = rdo_losses(tiny, r, alpha=3.0, layer=2, batch=batch)
        assert set(parts) == {"abl", "add", "ret"}
        assert all(torch.isfinite(v) and v >= 0 for v in parts.values())
        sum(parts.values()).backward()
    assert r.grad is not None and r.grad.norm() > 0


def tiny_pairs():
    return [{"answer": (PROMPTS[i], " Sure here is how"), "refusal": (PROMPTS[-1 - i], " I cannot help"),
             "retain": (PROMPTS[-1 - i], " the sea is")} for i in range(4)]


def test_training_lowers_loss_and_keeps_unit_norm(tiny):
    from refusal_tl.rdo import RdoConfig, train_rdo

    cfg = RdoConfig(accumulation=2, epochs=4, lr=5e-2)
    run = train_rdo(tiny, tiny_pairs(), alpha=3.0, layer=2, cfg=cfg, progress=False)
    losses = [h["train_loss"] for h in run.history]
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]
    assert all(abs(float(v.norm()) - 1) < 1e-5 for v in run.vectors)


def test_same_seed_same_direction_and_resume_equals_uninterrupted(tiny, tmp_path):
    from refusal_tl.rdo import RdoConfig, train_rdo

    cfg = RdoConfig(accumulation=2, epochs=2)
    full = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    again = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    assert torch.nn.functional.cosine_similarity(full.r, again.r, dim=0) > 0.999
    ckpt = tmp_path / "rdo.pt"
    train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=str(ckpt), max_steps=2, progress=False)  # interrupted
    resumed = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=str(ckpt), progress=False)
    assert resumed.step == full.step == 4
    torch.testing.assert_close(resumed.r, full.r, atol=1e-5, rtol=1e-5)


def test_hard_constraint_keeps_direction_orthogonal(tiny):
    from refusal_tl.rdo import RdoConfig, train_rdo

    dim = torch.randn(1, tiny.d_model)
    run = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), constraints=dim, progress=False)
    assert abs(float(run.r @ dim[0] / dim.norm())) < 1e-5
