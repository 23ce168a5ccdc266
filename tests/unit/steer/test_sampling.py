"""Temperature sampling (the paper's Fig. 5 baseline): seeded, distributed as softmax(logits / T)."""

import pytest
import torch

from refusal_tl.eval.samples import evaluate_temperature
from refusal_tl.geometry import RefusalDirection
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.generation import generate, greedy_tokens
from tests.helpers import PROMPTS


def test_a_tiny_temperature_is_greedy_and_a_seed_repeats(tiny):
    batch = tiny.chat.tokenize(PROMPTS[:3])
    greedy = greedy_tokens(tiny, batch, 6)
    cold = greedy_tokens(tiny, batch, 6, temperature=1e-6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cold, greedy)
    a, b, c = (generate(tiny, PROMPTS, 8, temperature=1.5, seed=s, desc=None) for s in (1, 1, 2))
    assert a == b and a != c


def test_first_tokens_follow_the_tempered_softmax(tiny):
    n, temperature = 3000, 2.0
    batch = tiny.chat.tokenize(PROMPTS[:1] * n)
    probs = torch.softmax(last_logits(tiny, tiny.chat.tokenize(PROMPTS[:1]))[0] / temperature, -1)
    first = greedy_tokens(tiny, batch, 1, stop_at_eos=False, temperature=temperature,
                          generator=torch.Generator().manual_seed(0))[:, 0]
    for tok in probs.topk(3).indices:  # the three likeliest tokens, each within 4 standard errors
        p = float(probs[tok])
        freq = float((first == tok).float().mean())
        assert abs(freq - p) <= 4 * (p * (1 - p) / n) ** 0.5, (int(tok), freq, p)


def test_temperature_evaluation_judges_every_draw(tiny):
    d = RefusalDirection(torch.randn(tiny.d_model), 2, -1, tiny.name, tiny.weights_sha, method="rdo")
    res = evaluate_temperature(tiny, PROMPTS[:3], d, "ablate", temperature=1.0, n=4, seed=7, max_new_tokens=5)
    assert res.scores.shape == (4, 3) and len(res.completions) == 4 and len(res.completions[0]) == 3
    assert res.source == {"temperature": 1.0, "method": "rdo"}
    curve = res.best_of_n()
    assert list(curve) == [1, 2, 4] and all(a <= b + 1e-9 for a, b in zip(curve.values(), list(curve.values())[1:]))
    again = evaluate_temperature(tiny, PROMPTS[:3], d, "ablate", temperature=1.0, n=4, seed=7, max_new_tokens=5)
    assert again.completions == res.completions
    with pytest.raises(Exception, match="temperature must be > 0"):
        evaluate_temperature(tiny, PROMPTS[:3], d, temperature=0.0, n=2)
