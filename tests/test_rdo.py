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
