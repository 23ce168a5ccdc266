"""Cone selection filters (docs/algorithms.md §6) on scores set by hand."""

from types import SimpleNamespace

import pytest
import torch

import refusal_tl.cone.select as select_module
from refusal_tl.cone import select_cone
from refusal_tl.cone.train import grow
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.scorer import Scorer
from refusal_tl.optim import SphereRun


class FixedScorer(Scorer):
    """Every vector gets the same bypass / induce / KL (no model behind it)."""

    def __init__(self, bypass: float, induce: float, kl: float):  # no super(): nothing to compute
        self.model, self.values = SimpleNamespace(device="cpu"), (bypass, induce, kl)

    def bypass_many(self, vs):
        return torch.full((len(vs),), self.values[0])

    def induce_many(self, vs, layer):
        return torch.full((len(vs),), self.values[1])

    def kl_many(self, vs):
        return torch.full((len(vs),), self.values[2])


def make_run(n_steps: int) -> SphereRun:
    vectors = [grow(None, 2, 8, i) for i in range(n_steps)]
    return SphereRun(vectors[-1], vectors, [{"train_loss": 5.0 - i} for i in range(n_steps)], {})


def test_the_lowest_loss_basis_passing_the_filters_is_chosen_with_its_scores():
    sel = select_cone(FixedScorer(-1.0, 1.0, 0.05), make_run(3), 1.0, 0, "lowest_loss", n_fixed=4)
    assert sel.step == 2 and sel.relaxed == () and len(sel.table) == 1
    assert sel.chosen["sample_kl_max"] == pytest.approx(0.05) and sel.chosen["basis_bypass"] == [-1.0, -1.0]


def test_a_lowest_loss_basis_failing_kl_is_a_one_line_error_naming_the_fix():
    with pytest.raises(RefusalTLError, match="--selection last20 or a larger --kl-threshold"):
        select_cone(FixedScorer(-1.0, 1.0, 0.5), make_run(3), 1.0, 0, "lowest_loss", n_fixed=4)


def test_induce_filters_are_relaxed_when_nothing_passes_them():
    sel = select_cone(FixedScorer(-1.0, -2.0, 0.05), make_run(3), 1.0, 0, "lowest_loss", n_fixed=4)
    assert sel.step == 2 and sel.relaxed == ("basis_induce", "sample_induce")


def test_last20_picks_the_lowest_mean_sample_bypass_among_admissible_bases(monkeypatch):
    scores = {0: (-3.0, 1.0, 0.5),    # best bypass but its samples' KL is too large
              1: (-2.0, -1.0, 0.05),  # basis not admissible (a basis vector's induce < 0)
              2: (-1.0, 1.0, 0.05),   # admissible: chosen
              3: (0.5, 1.0, 0.05)}    # admissible, worse bypass
    run = make_run(4)

    def score(scorer, basis, alpha, layer, n_fixed):
        bypass, induce, kl = scores[next(i for i, v in enumerate(run.vectors) if v is basis)]
        return dict(basis_bypass=[bypass] * 2, basis_induce=[induce] * 2, sample_bypass=bypass, sample_induce=induce,
                    sample_bypass_std=0.0, sample_kl_max=kl, sample_kl_mean=kl)

    monkeypatch.setattr(select_module, "score_basis", score)
    sel = select_cone(FixedScorer(0.0, 0.0, 0.0), run, 1.0, 0, "last20", n_fixed=4)
    assert sel.step == 2 and [row["step"] for row in sel.table] == [0, 1, 2, 3]
