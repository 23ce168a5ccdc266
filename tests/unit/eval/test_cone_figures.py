"""The cone experiments' tables and figures (tiny Qwen): the Fig. 20 sweep and every cone figure has data."""

import numpy as np
import pytest
import torch

from helpers import PROMPTS
from refusal_tl import plotting
from refusal_tl.eval.samples import SampleEval
from refusal_tl.eval.sweeps import alpha_grid, monotonic_sweep
from refusal_tl.steer.forward import refusal_scores
from refusal_tl.steer.hooks import intervention_hooks


def test_alpha_grid_is_symmetric_with_zero():
    grid = alpha_grid(3.0, 4)
    assert grid[0] == -3.0 and grid[-1] == 3.0 and 0.0 in grid and len(grid) == 5


def test_monotonic_sweep_scores_each_direction_at_each_alpha(tiny):
    dirs = {"a": torch.randn(1, tiny.d_model), "cone": torch.randn(3, tiny.d_model)}
    table = monotonic_sweep(tiny, PROMPTS, dirs, 1, [-2.0, 0.0, 2.0], batch_size=5)
    assert len(table) == 3 * 1 + 3 * 3
    v = dirs["cone"][2]
    one = refusal_scores(tiny, PROMPTS, intervention_hooks("add", v, tiny.n_layers, 1, alpha=2.0)).mean()
    row = table[(table.method == "cone") & (table.alpha == 2.0) & (table["sample"] == 2)]
    assert float(row.score.iloc[0]) == pytest.approx(float(one), abs=1e-4)
    assert table[table.alpha == 0.0].score.nunique() == 1  # α = 0: the unsteered model, once
    fig = plotting.monotonic_sweep(table)
    assert {t.name for t in fig.data if t.name} == {"a", "cone"}


def test_cone_figures_have_their_data():
    fig = plotting.cone_boxplots({2: [0.1, 0.2, 0.5], 3: [0.3, 0.4]}, {2: [0.0, 0.6]}, {"DIM": 0.1}, 0.6)
    boxes = [t for t in fig.data if t.type == "box"]
    assert [len(b.y) for b in boxes] == [3, 2] and any(t.name == "basis vectors" for t in fig.data)
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    curve = SampleEval("m", "ablate", None, None, 8, "substring", ["a", "b"], [["", ""]] * 2, scores, 0.0).best_of_n()
    fig = plotting.best_of_n({"cone dim 2": curve})
    assert list(fig.data[0].x) == [1, 2] and fig.layout.xaxis.type == "log"
    ev = SampleEval("m", "ablate", None, None, 8, "substring", ["a", "b"], [["", ""]] * 2, scores, 0.0)
    bands = ev.best_of_n_ci()
    assert all(lo <= curve[n] <= hi for n, (lo, hi) in bands.items())
    fig = plotting.best_of_n({"cone dim 2": curve}, bands={"cone dim 2": bands})
    assert fig.data[0].fill == "toself" and list(fig.data[1].x) == [1, 2]  # the band, then its curve
    w = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    rates = np.linspace(0, 1, 20)
    fig = plotting.cone_3d(w, rates, 0.3, {"DIM": np.array([1.0, 0.2, 0.0])})
    points = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers"]
    assert sum(len(t.x) for t in points) == 20 and {t.name for t in points} == {"bypasses refusal", "does not"}


def test_cone_3d_figure_puts_the_evaluated_samples_on_the_positive_orthant():
    """Fig. 1 made real: sample i's point is its unit weights on the basis, marked by whether it bypasses."""
    from refusal_tl.eval.samples import cone_samples
    from refusal_tl.geometry import RefusalCone, RefusalDirection
    from refusal_tl.pipeline.figures import cone_3d_figure

    basis = torch.linalg.qr(torch.randn(16, 3))[0].T
    cone = RefusalCone(basis, layer=1, alpha=2.0, model="m", weights_sha="0")
    rates = np.array([0.0, 0.5, 0.1, 0.9, 0.2, 0.0])
    ref = RefusalDirection(2.0 * basis[1], layer=1, pos=-1, model="m", weights_sha="0")
    fig = cone_3d_figure(cone, rates, 0.25, len(rates), seed=7, references={"DIM": ref})
    points = {t.name: np.array([t.x, t.y, t.z]).T for t in fig.data if t.type == "scatter3d" and t.mode == "markers"}
    assert [len(points["bypasses refusal"]), len(points["does not"])] == [4, 2]
    expected = (cone_samples(cone, len(rates), 7) @ basis.T).numpy()  # samples carry the norm α
    assert np.allclose(np.linalg.norm(expected, axis=1), cone.alpha, atol=1e-5)
    expected /= cone.alpha
    np.testing.assert_allclose(points["bypasses refusal"], expected[rates <= 0.25], atol=1e-5)
    assert np.all(expected >= -1e-6)  # weights on the positive orthant
    dim_line = next(t for t in fig.data if t.name == "DIM")
    np.testing.assert_allclose([dim_line.x[1], dim_line.y[1], dim_line.z[1]], [0, 1, 0], atol=1e-5)
