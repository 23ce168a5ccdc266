"""Interventions: ablation removes the direction everywhere, addition adds it, hooks equal
baked weights, gradients reach the direction, left padding and the KV cache are harmless."""

from functools import partial

import pytest
import torch

from helpers import PROMPTS, make_hf_model, make_tokenizer
from refusal_tl.model import wrap_hf_model
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.generation import greedy_tokens
from refusal_tl.steer.hooks import (
    ABLATION_POINTS,
    ablation_hooks,
    addition_hooks,
    intervention_hooks,
    orthogonalize_weights,
)


def capture_hooks(names, store):
    def save(x, hook, name):
        store[name] = x.detach().clone()
    return [(n, partial(save, name=n)) for n in names]


def test_ablation_zeroes_projection_at_every_hook(tiny):
    r = torch.randn(tiny.d_model)
    unit = r / r.norm()
    names = [f"blocks.{l}.{p}" for l in range(tiny.n_layers) for p in ABLATION_POINTS]
    names.append(f"blocks.{tiny.n_layers - 1}.hook_resid_post")
    batch = tiny.chat.tokenize(PROMPTS[:4])
    clean, ablated = {}, {}
    tiny.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask, fwd_hooks=capture_hooks(names, clean))
    tiny.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask,
                               fwd_hooks=ablation_hooks(r, tiny.n_layers) + capture_hooks(names, ablated))
    assert len(ablated) == len(names)
    for name in names:
        assert (clean[name] @ unit).abs().max() > 1e-2, name  # there was something to remove
        assert (ablated[name] @ unit).abs().max() < 1e-4, name


def test_ablating_several_directions_removes_their_span(tiny):
    dirs = torch.randn(2, tiny.d_model)
    store = {}
    batch = tiny.chat.tokenize(PROMPTS[:2])
    name = f"blocks.{tiny.n_layers - 1}.hook_resid_post"
    tiny.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask,
                               fwd_hooks=ablation_hooks(dirs, tiny.n_layers) + capture_hooks([name], store))
    assert (store[name] @ dirs.T).abs().max() < 1e-4


def test_addition_adds_vector_at_one_layer(tiny):
    v = torch.randn(tiny.d_model)
    layer = 2
    before, after = {}, {}
    name = f"blocks.{layer}.hook_resid_pre"
    batch = tiny.chat.tokenize(PROMPTS[:3])
    tiny.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask,
                               fwd_hooks=capture_hooks([name], before) + addition_hooks(v, layer, -1.0)
                               + capture_hooks([name], after))
    torch.testing.assert_close(after[name], before[name] - v)


def test_subtract_uses_alpha_times_unit(tiny):
    v = torch.randn(tiny.d_model) * 5
    (name, fn), = intervention_hooks("subtract", v, tiny.n_layers, layer=1, alpha=2.0)
    x = torch.zeros(1, 3, tiny.d_model)
    torch.testing.assert_close(fn(x, hook=None)[0, 0], -2.0 * v / v.norm())
    assert name == "blocks.1.hook_resid_pre"


def test_hook_ablation_equals_weight_orthogonalisation(tiny):
    r = torch.randn(tiny.d_model)
    batch = tiny.chat.tokenize(PROMPTS)
    hooked = last_logits(tiny, batch, ablation_hooks(r, tiny.n_layers))
    tok = make_tokenizer()
    hf = make_hf_model(tok, seed=0)  # same weights as the fixture
    orthogonalize_weights(hf, r)
    baked = wrap_hf_model(hf, tok, name="tiny-baked", device="cpu")
    assert not torch.allclose(last_logits(tiny, batch), hooked, atol=1e-3)  # ablation matters
    torch.testing.assert_close(last_logits(baked, batch), hooked, atol=1e-4, rtol=1e-4)


def test_gradients_reach_direction(tiny):
    r = torch.nn.Parameter(torch.randn(tiny.d_model))
    batch = tiny.chat.tokenize(PROMPTS[:2])
    with torch.enable_grad():
        hooks = ablation_hooks(r, tiny.n_layers) + addition_hooks(r, 1)
        logits = tiny.bridge.run_with_hooks(batch.ids, attention_mask=batch.mask, fwd_hooks=hooks)
        logits[:, -1].logsumexp(-1).sum().backward()
    assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.norm() > 0
    assert all(p.grad is None for p in tiny.hf_model.parameters())


@pytest.mark.parametrize("kind", ["none", "ablate", "add"])
def test_left_padding_is_harmless(tiny, kind):
    r = torch.randn(tiny.d_model)
    hooks = intervention_hooks(kind, r, tiny.n_layers, layer=2)
    padded = last_logits(tiny, tiny.chat.tokenize(PROMPTS), hooks)
    for i, prompt in enumerate(PROMPTS):
        alone = last_logits(tiny, tiny.chat.tokenize([prompt]), hooks)
        torch.testing.assert_close(padded[i], alone[0], atol=1e-4, rtol=1e-4)


def full_forward_greedy(model, batch, n, hooks):
    ids, mask, out = batch.ids, batch.mask, []
    for _ in range(n):
        nxt = last_logits(model, type(batch)(ids, mask), hooks).argmax(-1)
        out.append(nxt)
        ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
    return torch.stack(out, 1)


@pytest.mark.parametrize("kind", ["none", "ablate"])
def test_cached_generation_matches_full_forwards(tiny, kind):
    """Guards the KV-cache path (transformers 5.24 + TransformerLens 4.3 broke it silently)."""
    hooks = intervention_hooks(kind, torch.randn(tiny.d_model), tiny.n_layers)
    batch = tiny.chat.tokenize(PROMPTS[:4])
    cached = greedy_tokens(tiny, batch, 6, hooks)
    expected = full_forward_greedy(tiny, batch, cached.shape[1], hooks)
    stops = torch.tensor(sorted({tiny.tokenizer.eos_token_id, tiny.tokenizer.pad_token_id}))
    for row_c, row_e in zip(cached, expected):
        end = next((i for i, t in enumerate(row_e) if t in stops), len(row_e) - 1)
        assert torch.equal(row_c[: end + 1], row_e[: end + 1])


def test_hooks_are_scoped(tiny):
    r = torch.randn(tiny.d_model)
    batch = tiny.chat.tokenize(PROMPTS[:2])
    before = last_logits(tiny, batch)
    last_logits(tiny, batch, ablation_hooks(r, tiny.n_layers))
    with pytest.raises(RuntimeError):
        with tiny.bridge.hooks(fwd_hooks=ablation_hooks(r, tiny.n_layers)):
            raise RuntimeError
    torch.testing.assert_close(last_logits(tiny, batch), before)


@pytest.mark.parametrize("kind", ["none", "ablate", "add"])
def test_shared_prefix_equals_full_forward(tiny, kind):
    hooks = intervention_hooks(kind, torch.randn(tiny.d_model), tiny.n_layers, layer=1)
    split = tiny.chat.tokenize(PROMPTS, share_prefix=True)
    assert split.prefix is not None and split.prefix.shape[1] > 5
    torch.testing.assert_close(last_logits(tiny, split, hooks), last_logits(tiny, tiny.chat.tokenize(PROMPTS), hooks),
                               atol=1e-4, rtol=1e-4)
    full = tiny.chat.tokenize(PROMPTS[:4])
    torch.testing.assert_close(greedy_tokens(tiny, tiny.chat.tokenize(PROMPTS[:4], share_prefix=True), 5, hooks),
                               greedy_tokens(tiny, full, 5, hooks))
