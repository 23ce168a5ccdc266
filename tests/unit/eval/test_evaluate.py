"""Comparison tables and sweeps on the tiny model, and the figures drawn from them."""

import pytest
import torch

from helpers import PROMPTS
from refusal_tl import plotting
from refusal_tl.eval.evaluate import first_token_kl
from refusal_tl.eval.sweeps import addition_sweep
from refusal_tl.geometry import RefusalDirection
from refusal_tl.pipeline.suite import compare_directions


@pytest.fixture
def directions(tiny):
    make = lambda seed: RefusalDirection(3 * torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(seed)),
                                         layer=2, pos=-1, model=tiny.name, weights_sha="tiny")
    return {"DIM": make(1), "RDO": make(2)}


def test_compare_directions_covers_every_condition(tiny, directions):
    table = compare_directions(tiny, directions, PROMPTS[:3], PROMPTS[3:6], max_new_tokens=3)
    conditions = {"harmful/none", "harmful/ablate", "harmful/subtract", "harmless/none", "harmless/add",
                  "harmless/ablate KL"}
    for method in directions:
        rows = table[table.method == method]
        assert set(rows.condition) == conditions
        kl = first_token_kl(tiny, PROMPTS[3:6], directions[method], "ablate")
        assert rows.set_index("condition").value["harmless/ablate KL"] == pytest.approx(kl)
    assert (table[table.condition != "harmless/ablate KL"].n == 3).all()
    base = table[table.condition == "harmful/none"].value  # one baseline, shared by both methods
    assert base.nunique() == 1
    assert len(plotting.method_comparison(table).data) == 2 * 3  # one bar trace per panel and method


def test_addition_sweep_starts_at_the_unsteered_model(tiny, directions):
    sweep = addition_sweep(tiny, directions, {"harmful": PROMPTS[:2], "sensitive": PROMPTS[2:4]}, [0.0, 2.0],
                           max_new_tokens=3)
    assert len(sweep) == 2 * 2 * 2
    at_zero = sweep[sweep.alpha == 0].groupby("prompts").rate.nunique()
    assert (at_zero == 1).all()  # α = 0 is the same for every direction
    assert len(plotting.addition_sweep(sweep).data) == 4
