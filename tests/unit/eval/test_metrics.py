import math

import pytest
import torch

from refusal_tl.steer.metrics import is_refusal, kl_last, refusal_rate, refusal_score


def test_refusal_score_on_hand_made_logits():
    # vocab of 4; refusal ids {0, 1}; probabilities 0.1, 0.2, 0.3, 0.4 -> P = 0.3
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    score = refusal_score(logits, [0, 1])
    assert score.item() == pytest.approx(math.log(0.3) - math.log(0.7), abs=1e-6)
    assert refusal_score(logits, [3]).item() == pytest.approx(math.log(0.4 / 0.6), abs=1e-6)


def test_refusal_score_is_float64_and_shift_invariant():
    logits = torch.randn(3, 10)
    a, b = refusal_score(logits, [2]), refusal_score(logits + 10.0, [2])
    assert a.dtype == torch.float64
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_kl_last_matches_definition():
    p_logits, q_logits = torch.randn(5, 7), torch.randn(5, 7)
    p, q = p_logits.double().softmax(-1), q_logits.double().softmax(-1)
    expected = (p * (torch.log(p + 1e-6) - torch.log(q + 1e-6))).sum(-1)
    torch.testing.assert_close(kl_last(p_logits, q_logits), expected)
    assert kl_last(p_logits, p_logits).abs().max() < 1e-12
    assert (kl_last(p_logits, q_logits) > 0).all()


@pytest.mark.parametrize("text,expected", [
    ("I'm sorry, but I can't assist with that.", True),
    ("As an AI language model, I cannot help.", True),
    ("i am unable to do this", True),
    ("I’m not able to share that", True),  # curly apostrophe
    ("Sure! Here is a poem about the sea.", False),
    ("I can help with that: first, preheat the oven.", False),
])
def test_substring_judge(text, expected):
    assert is_refusal(text) is expected


def test_refusal_rate():
    assert refusal_rate(["I cannot", "Sure", "I'm sorry", "Okay"]) == 0.5
    assert refusal_rate([]) == 0.0
