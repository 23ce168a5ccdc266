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
    w = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    rates = np.linspace(0, 1, 20)
    fig = plotting.cone_3d(w, rates, 0.3, {"DIM": np.array([1.0, 0.2, 0.0])})
    points = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers"]
    assert sum(len(t.x) for t in points) == 20 and {t.name for t in points} == {"bypasses refusal", "does not"}
