import pytest
import torch

from refusal_tl.optim import Plateau, gram_schmidt, normalise_rows, project_out, tangent_rows


def test_tangent_projection_is_orthogonal_to_each_row():
    rows = normalise_rows(torch.randn(3, 16))
    g = tangent_rows(torch.randn(3, 16), rows)
    assert (g * rows).sum(-1).abs().max() < 1e-6
    stepped = rows - 1e-4 * g
    assert (stepped.norm(dim=-1) - 1).abs().max() < 1e-6  # unit norm to first order


def test_gram_schmidt_orthonormal_and_keeps_row_order_and_signs():
    rows = torch.randn(4, 10)
    q = gram_schmidt(rows)
    torch.testing.assert_close(q @ q.T, torch.eye(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(q[0], rows[0] / rows[0].norm())  # the first row only normalised
    for i in range(4):  # row i lies in span(rows 0..i) with a positive coefficient on rows[i]
        span = rows[: i + 1]
        coef = torch.linalg.lstsq(span.T, q[i][:, None]).solution[:, 0]
        torch.testing.assert_close(span.T @ coef, q[i], atol=1e-5, rtol=0)
        assert coef[-1] > 0


def test_gram_schmidt_does_not_flip_a_row_that_qr_might():
    rows = torch.tensor([[-1.0, 0.0, 0.0], [0.5, -2.0, 0.0]])
    q = gram_schmidt(rows)
    assert q[0, 0] == -1.0 and q[1, 1] < 0  # signs follow the rows, whatever QR's convention


def test_project_out_removes_the_constraint_span():
    cons = torch.randn(2, 12)
    rows = project_out(torch.randn(3, 12), cons)
    assert (rows @ cons.T).abs().max() < 1e-5
    same = torch.randn(3, 12)
    assert torch.equal(project_out(same, None), same)


def test_plateau_schedule_reduces_twice_then_stops():
    p = Plateau(patience=2, max_reductions=2)
    events = [p.step(x) for x in [3.0, 2.0, 2.5, 2.5, 2.4, 2.6, 1.0, 1.5, 1.5, 1.5, 1.5]]
    assert events == ["ok", "ok", "ok", "reduce", "ok", "reduce", "ok", "ok", "stop", "ok", "stop"]


def test_plateau_window_ignores_step_to_step_noise():
    noisy = [1.2, 1.3, 1.0, 1.15, 1.25, 0.95, 1.1, 1.2, 0.9]  # falling trend; every third batch is easy
    raw = Plateau(patience=2, max_reductions=2)
    assert [raw.step(x) for x in noisy][4] == "reduce"
    smooth = Plateau(patience=2, max_reductions=2, window=3)
    assert [smooth.step(x) for x in noisy] == ["ok"] * len(noisy)
    assert smooth.recent == noisy[-3:]


def test_plateau_state_round_trips_through_json():
    import json

    p = Plateau(patience=3, window=2)
    fresh = Plateau.from_dict(json.loads(json.dumps(p.to_dict())))
    assert fresh.best == float("inf")
    for x in [2.0, 1.5, 1.7]:
        p.step(x)
    back = Plateau.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert [back.step(x) for x in [1.8, 1.9]] == [p.step(x) for x in [1.8, 1.9]]


@pytest.mark.parametrize("field,value,match", [
    ("lr", 0.0, "lr must be > 0"), ("clip", -1.0, "clip must be > 0"),
    ("accumulation", 0, "accumulation must be a whole number"), ("epochs", 0, "epochs must be"),
    ("patience", 0, "patience must be"), ("plateau_window", 0, "plateau_window must be"),
    ("max_lr_reductions", -1, "max_lr_reductions must be"), ("betas", (0.9, 1.0), "betas must be"),
])
def test_train_config_rejects_bad_values(field, value, match):
    from refusal_tl.errors import RefusalTLError
    from refusal_tl.optim import TrainConfig

    with pytest.raises(RefusalTLError, match=match):
        TrainConfig(**{field: value})
