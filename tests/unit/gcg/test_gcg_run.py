"""run_gcg on the tiny model, with and without the auxiliary term, and the figures of notebook 05."""

import pytest
import torch

from helpers import PROMPTS
from refusal_tl import plotting
from refusal_tl.gcg import GcgConfig, run_gcg
from refusal_tl.geometry import RefusalDirection


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    d = lambda seed, m: RefusalDirection(3 * torch.randn(32, generator=torch.Generator().manual_seed(seed)), layer=2,
                                         pos=None, model=tiny.name, weights_sha="tiny", method=m)
    dim, r = d(1, "dim"), d(2, "repind")
    out = {}
    for w in (10.0, 0.0):
        cfg = GcgConfig(model=tiny.name, profile="ci", steps=3, search_width=16, topk=16, suffix_len=4, eval_batch=8,
                        aux_weight=w, aux_layer=2, n_prompts=2, max_new_tokens=4)
        out[f"w_aux = {w:g}"] = run_gcg(cfg, tiny, r, dim, PROMPTS[:3], tmp_path_factory.mktemp(f"gcg{w:g}"),
                                        progress=False)
    return out


def test_rows_follow_the_documented_format(runs, tiny):
    for rows in runs.values():
        assert len(rows) == 2  # n_prompts
        for row in rows:
            assert len(row.losses) == 3 and len(row.cos_plain) == len(row.cos_suffixed) == tiny.n_layers
            assert all(b <= a + 1e-5 for a, b in zip(row.losses, row.losses[1:]))
            assert isinstance(row.refused, bool) and row.suffix
    plain = runs["w_aux = 0"]
    assert all(r.aux == [0.0] * 3 for r in plain)  # plain GCG: no auxiliary term
    assert [r.cos_plain for r in plain] == [r.cos_plain for r in runs["w_aux = 10"]]  # same prompts, same traces


def test_every_gcg_figure_has_its_data(runs):
    fig = plotting.gcg_losses(runs)
    assert sum(len(t.y) for t in fig.data) == 2 * 2 * 2 * 3  # runs × prompts × panels × steps
    fig = plotting.gcg_traces(runs, layer=2)
    assert len([t for t in fig.data if t.mode == "lines"]) == 3  # plain + one suffixed line per run
    fig = plotting.aux_effect(runs, baseline=0.5)
    assert [len(t.y) for t in fig.data] == [2, 2]
