"""Evaluating many sampled directions (tiny Qwen): batched equals one at a time, best-of-N, the file."""

import pytest
import torch

from helpers import PROMPTS
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.eval.samples import SampleEval, cone_samples, evaluate_cone, evaluate_directions
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.optim.sphere import gram_schmidt


@pytest.fixture
def cone(tiny):
    basis = gram_schmidt(torch.randn(3, tiny.d_model, generator=torch.Generator().manual_seed(2)))
    return RefusalCone(basis, 1, 4.0, tiny.name, tiny.weights_sha)


@pytest.mark.parametrize("kind", ["ablate", "add"])
def test_batched_samples_equal_one_evaluation_per_direction(tiny, cone, kind):
    res = evaluate_cone(tiny, PROMPTS, cone, n=3, seed=7, intervention=kind, max_new_tokens=5, batch_size=9)
    for m, v in enumerate(cone_samples(cone, 3, 7)):
        single = evaluate_intervention(tiny, PROMPTS, RefusalDirection(v, 1, None, tiny.name, "x"), kind,
                                       max_new_tokens=5)
        assert res.completions[m] == single.completions
        assert res.scores[m].tolist() == single.scores


def test_the_first_samples_do_not_depend_on_how_many_are_drawn(cone):
    assert torch.equal(cone_samples(cone, 5, 42), cone_samples(cone, 600, 42)[:5])
    assert torch.allclose(cone_samples(cone, 5, 42).norm(dim=-1), torch.full((5,), 4.0))


def test_best_of_n_over_disjoint_blocks():
    scores = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # 4 samples x 2 prompts (1 = refused)
    res = SampleEval("m", "ablate", None, None, 8, "substring", ["a", "b"], [["", ""]] * 4, scores, 0.0)
    curve = res.best_of_n([1, 2, 4])
    assert curve[1] == pytest.approx(0.25)  # mean success over samples and prompts
    assert curve[2] == pytest.approx(0.5)   # blocks {0,1}: a answered; {2,3}: b answered
    assert curve[4] == pytest.approx(1.0)
    d = res.to_dict()
    assert [s["refusal_rate"] for s in d["samples"]] == [1.0, 0.5, 1.0, 0.5]
    assert d["prompts"][0]["scores"] == [1.0, 0.0, 1.0, 1.0] and d["n_samples"] == 4


def test_wrong_width_and_missing_layer_are_clear_errors(tiny, cone):
    with pytest.raises(RefusalTLError, match="d_model"):
        evaluate_directions(tiny, PROMPTS, torch.randn(2, tiny.d_model + 1))
    with pytest.raises(RefusalTLError, match="needs a layer"):
        evaluate_directions(tiny, PROMPTS, torch.randn(2, tiny.d_model), "add")
    wide = RefusalCone(torch.eye(2, tiny.d_model + 2), 1, 1.0, "other", "x")
    with pytest.raises(RefusalTLError, match="another model"):
        evaluate_cone(tiny, PROMPTS, wide, 2)
