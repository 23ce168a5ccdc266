"""Notebook 04's analysis pieces on the tiny model: every figure has its data; top-k by span and sequentially."""

import pytest
import torch

from helpers import PROMPTS
from refusal_tl import plotting
from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.geometry import RefusalDirection
from refusal_tl.repind.analysis import ablation_rates, figure6_traces, interference_matrix, topk_rates


def _d(seed, method="repind"):
    v = 3 * torch.randn(32, generator=torch.Generator().manual_seed(seed))
    return RefusalDirection(v, layer=2, pos=None, model="tiny-qwen", weights_sha="tiny", method=method)


@pytest.fixture(scope="module")
def dirs():
    return {"DIM": _d(1, "dim"), "RepInd-1": _d(2), "RepInd-2": _d(3)}


def test_figure6_traces_give_both_panels_per_direction(tiny, dirs):
    traces = figure6_traces(tiny, PROMPTS[:4], dirs["DIM"], {"RepInd-1": dirs["RepInd-1"]})
    assert list(traces) == ["RepInd-1 (DIM ablated)", "DIM (RepInd-1 ablated)"]
    fig = plotting.cosine_traces(traces)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 4 and all(len(t.y) == tiny.n_layers for t in lines)


def test_topk_rates_match_one_evaluation_per_k(tiny, dirs):
    ordered = [dirs["RepInd-1"], dirs["RepInd-2"]]
    curves = topk_rates(tiny, PROMPTS[:3], ordered, max_new_tokens=3)
    assert curves["span projection"][1] == curves["sequential (authors)"][1]
    for seq, name in ((False, "span projection"), (True, "sequential (authors)")):
        direct = evaluate_intervention(tiny, PROMPTS[:3], ordered, "ablate", max_new_tokens=3, sequential=seq).rate
        assert curves[name][2] == direct
    rates = ablation_rates(tiny, PROMPTS[:3], dirs, max_new_tokens=3)
    fig = plotting.topk_ablation(curves, {"DIM": rates["DIM"]}, 0.5)
    assert [len(t.y) for t in fig.data] == [2, 2]
    assert len(plotting.direction_bars(rates, 0.5).data[0].y) == 3


def test_interference_matrix_is_zero_on_the_diagonal_and_positive_off_it(tiny, dirs):
    names, m = interference_matrix(tiny, PROMPTS[:3], dirs)
    assert names == list(dirs) and m.shape == (3, 3)
    assert (m.diagonal() == 0).all() and (m + torch.eye(3) > 0).all()
    fig = plotting.interference_heatmap(names, m)
    assert len(fig.data[0].z) == 3
