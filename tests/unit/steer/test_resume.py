"""Resuming a forward at the intervention's layer gives the full forward's numbers exactly."""

from __future__ import annotations

import pytest
import torch

from helpers import PROMPTS, make_tiny
from refusal_tl.eval.scorer import Scorer
from refusal_tl.steer.forward import map_last_logits, refusal_scores
from refusal_tl.steer.hooks import addition_hooks
from refusal_tl.steer.resume import clean_states, resumed_refusal_scores


@pytest.mark.parametrize("family", ["qwen", "gemma2", "llama"])
def test_resumed_scores_equal_full_forward(family):
    model = make_tiny(family=family)
    base, states = clean_states(model, PROMPTS, batch_size=3)  # uneven batches, left padding
    assert torch.equal(base, map_last_logits(model, PROMPTS, lambda lg, idx: lg, [], 3))
    if family == "qwen":
        assert all(s.prefix is not None for s in states)  # the shared system prompt is resumed too
    v = 3 * torch.randn(model.d_model)
    for layer in range(model.n_layers):
        hooks = addition_hooks(v, layer)
        full = refusal_scores(model, PROMPTS, hooks, 3)
        resumed = resumed_refusal_scores(model, states, layer, hooks)
        assert torch.equal(resumed, full), (family, layer)
    clean = resumed_refusal_scores(model, states, 2)
    assert not torch.equal(clean, full)  # the hook mattered
    assert torch.equal(clean, refusal_scores(model, PROMPTS, [], 3))


def test_hooks_before_the_resumed_block_are_refused(tiny):
    _, states = clean_states(tiny, PROMPTS[:2])
    with pytest.raises(ValueError, match="before block 3"):
        resumed_refusal_scores(tiny, states, 3, addition_hooks(torch.randn(tiny.d_model), 1))


def test_scorer_induce_is_the_full_forward_score(tiny):
    scorer = Scorer(tiny, PROMPTS[:3], PROMPTS[3:], batch_size=2)
    v = 2 * torch.randn(tiny.d_model)
    for layer in (0, 3):
        full = float(refusal_scores(tiny, PROMPTS[3:], addition_hooks(v, layer), 2).mean())
        assert scorer.induce(v, layer) == full


def test_scorer_induce_many_resumes_and_equals_the_batched_full_forwards(tiny):
    """The cone filters' induce scores, resumed per vector, equal the earlier batched full forwards
    (one direction per row, no shared prefix) up to float rounding."""
    from refusal_tl.steer.multi import multi_refusal_scores

    scorer = Scorer(tiny, PROMPTS[:3], PROMPTS[3:], batch_size=2)
    vs = 2 * torch.randn(5, tiny.d_model, generator=torch.Generator().manual_seed(3))
    many = scorer.induce_many(vs, 2)
    assert torch.equal(many, torch.tensor([scorer.induce(v, 2) for v in vs]))
    batched = multi_refusal_scores(tiny, PROMPTS[3:], vs, "add", 2, batch_size=4).mean(1)
    torch.testing.assert_close(many, batched.float(), atol=1e-4, rtol=1e-4)
    assert many.std() > 1e-2  # the vectors differ in effect: a real comparison
