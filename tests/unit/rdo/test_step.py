"""The efficient RDO step equals the straightforward one, on Qwen, Gemma 2 and Llama."""

import pytest
import torch

from helpers import PROMPTS, make_tiny, mixed_pairs
from refusal_tl.rdo import RdoConfig
from refusal_tl.rdo.step import Prepared, reference_step, step_losses
from refusal_tl.steer.windows import pair_lengths, windows


def test_windows_mark_last_template_token_and_targets(tiny):
    w = windows(tiny, ["hack wifi", "tell me a story"], [" Sure", " I cannot help"])
    n_target = [len(tiny.tokenizer(t, add_special_tokens=False).input_ids) for t in (" Sure", " I cannot help")]
    assert w.width == max(n_target) + 1
    assert w.window.sum(1).tolist() == [n + 1 for n in n_target]
    assert (w.labels != -100).sum(1).tolist() == n_target
    ids = w.batch.ids[:, -w.width:]
    assert w.labels[1, -2].item() == ids[1, -1].item()  # shifted by one


@pytest.fixture(scope="module", params=["qwen", "gemma2", "llama"])
def family_model(request):
    return make_tiny(family=request.param)


@pytest.mark.parametrize("retain", ["paper", "code"])
def test_efficient_step_equals_straightforward_step(family_model, retain):
    """Cached clean logits, restart at l_add, window-only unembedding and batching change nothing."""
    model, pairs, group = family_model, mixed_pairs(), [0, 1, 2, 3]
    cfg = RdoConfig(micro_batch=3, retain_kl=retain)
    grads, losses = [], []
    for efficient in (True, False):
        r = torch.nn.Parameter(torch.randn(1, model.d_model, generator=torch.Generator().manual_seed(1)))
        if efficient:
            out = step_losses(model, r, 3.0, 2, pairs, group, Prepared(model, pairs, layer=2),
                              pair_lengths(model, pairs), cfg)
        else:
            out = reference_step(model, r, 3.0, 2, pairs, group, cfg)
        losses.append(out)
        grads.append(r.grad.clone())
    for name in ("abl", "add", "ret"):
        assert abs(losses[0][name] - losses[1][name]) <= 1e-5 * abs(losses[1][name]), (name, losses)
        assert losses[0][name] > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].norm() > 0


def test_gemma2_rdo_terms_read_logits_before_the_soft_cap():
    """The cap (2.0 in the tiny Gemma 2) changes the logits; every RDO term must skip it."""
    from refusal_tl.steer.forward import window_logits

    gemma = make_tiny(family="gemma2")
    batch = gemma.chat.tokenize(PROMPTS[:3])
    capped, raw = window_logits(gemma, batch, 2), window_logits(gemma, batch, 2, capped=False)
    assert capped.abs().max() <= 2.0 + 1e-5 < raw.abs().max()
    torch.testing.assert_close(capped, 2.0 * torch.tanh(raw / 2.0), atol=1e-5, rtol=1e-5)
    assert gemma.hf_model.config.final_logit_softcapping == 2.0  # restored after the call
