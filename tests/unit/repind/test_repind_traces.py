"""Cosine traces, the RepInd loss, sequential vs span ablation (tiny models)."""

import pytest
import torch

from helpers import PROMPTS, make_tiny, mixed_pairs
from refusal_tl.errors import RefusalTLError
from refusal_tl.repind import cosine_traces, repind_loss, resid_traces, trace_pair
from refusal_tl.repind.losses import repind_from_resid
from refusal_tl.repind.step import TraceCache, ablation_with_traces
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.hooks import ablation_hooks, orthogonalize_weights


@pytest.fixture(scope="module")
def unreachable():
    """A tiny Qwen whose embedding, attention and MLP outputs never write along μ: ablating μ
    cannot change anything, and nothing the model computes has a μ component."""
    model = make_tiny(seed=3)
    mu = torch.randn(model.d_model, generator=torch.Generator().manual_seed(5))
    orthogonalize_weights(model.hf_model, mu)
    return model, mu


def _rand(d, seed):
    return torch.randn(d, generator=torch.Generator().manual_seed(seed))


def test_traces_unchanged_when_the_ablated_direction_cannot_reach_the_measured_one(unreachable):
    model, mu = unreachable
    lam = _rand(model.d_model, 11)
    trace = trace_pair(model, PROMPTS[:5], lam, mu)
    torch.testing.assert_close(trace.ablated, trace.clean, atol=1e-5, rtol=0)
    assert trace.peak_delta < 1e-5 and trace.clean.abs().max() > 0.05  # the trace itself is not trivial
    # the other way round ablating λ does change λ's own trace, and the model does write along λ
    own = cosine_traces(model, PROMPTS[:5], lam, lam)
    assert own.abs().max() < 1e-5 < trace.clean.abs().max()


def test_traces_change_when_the_directions_interact(tiny):
    lam, mu = _rand(tiny.d_model, 1), _rand(tiny.d_model, 2)
    trace = trace_pair(tiny, PROMPTS[:5], lam, mu)
    assert trace.peak_delta > 1e-3
    d = trace.to_dict()
    assert set(d) >= {"layers", "clean_mean", "clean_std", "ablated_mean", "ablated_std"}
    assert d["layers"] == list(range(tiny.n_layers)) and len(d["ablated_std"]) == tiny.n_layers


def test_traces_are_measured_after_the_ablation_at_each_layer(tiny):
    """cos(x̃, μ) with μ ablated is 0 at every layer (the record applies the projection itself)."""
    mu = _rand(tiny.d_model, 2)
    assert cosine_traces(tiny, PROMPTS[:3], mu, mu).abs().max() < 1e-5


def test_repind_loss_is_zero_for_a_pair_that_does_not_interact_and_positive_for_one_that_does(unreachable, tiny):
    """Non-interacting: μ lives in a subspace nothing writes to and λ ⟂ μ (ablating λ then adds
    no μ component either); interacting: two random directions on a random model."""
    prompts = PROMPTS[:4]
    mu0 = unreachable[1]
    lam0 = _rand(32, 11) - (_rand(32, 11) @ mu0) / (mu0 @ mu0) * mu0
    for model, lam, mu, zero in ((unreachable[0], lam0, mu0, True),
                                 (tiny, _rand(32, 1), _rand(32, 2), False)):
        batch = model.chat.tokenize(prompts, share_prefix=False)
        layers = list(range(model.n_layers))
        with torch.no_grad():
            clean = resid_traces(model, batch, layers)
            abl_r = resid_traces(model, batch, layers, lam)
            abl_v = resid_traces(model, batch, layers, mu)[:, None]
            loss = repind_from_resid(lam, mu[None], clean, abl_v, abl_r)
        assert loss.shape == (len(prompts),)
        assert (loss.max() < 1e-9) if zero else (loss.min() > 1e-5), loss


def test_repind_loss_formula():
    clean_v = torch.tensor([[[0.5, 0.2]]])
    abl_r_v = torch.tensor([[[0.1, 0.2]]])
    clean_r = torch.tensor([[0.3, 0.3]])
    abl_v_r = torch.tensor([[[0.3, 0.1]]])
    # ((0.4² + 0)/2) + ((0 + 0.2²)/2)
    assert repind_loss(clean_v, abl_r_v, clean_r, abl_v_r).item() == pytest.approx(0.08 + 0.02)


def test_repind_loss_averages_over_the_tokens_its_mask_keeps():
    """Token axis: per-token squared differences averaged over kept tokens, then over layers;
    a masked token changes nothing, and a one-token mask is the last-token loss."""
    clean_v = torch.tensor([[[[0.5, 9.0], [0.2, 0.2]]]])  # [b=1, v=1, l=2, t=2]; token 0 of row 0 is masked
    abl_r_v = torch.tensor([[[[0.1, -9.0], [0.2, 0.0]]]])
    clean_r = torch.tensor([[[0.3, 0.3], [0.3, 0.3]]])
    abl_v_r = torch.tensor([[[[0.3, 0.3], [0.1, 0.1]]]])
    mask = torch.tensor([[0.0, 1.0]])
    # layer 0, token 1: 18² + 0; layer 1, token 1: 0.2² + 0.2²; mean over layers
    assert repind_loss(clean_v, abl_r_v, clean_r, abl_v_r, mask).item() == pytest.approx((324 + 0.08) / 2)
    # every token: layer 0 (0.16 + 324) / 2, layer 1 (0.04 + 0.08) / 2
    assert repind_loss(clean_v, abl_r_v, clean_r, abl_v_r, torch.ones(1, 2)).item() == pytest.approx(
        (162.08 + 0.06) / 2)
    last = repind_loss(clean_v[..., -1], abl_r_v[..., -1], clean_r[..., -1], abl_v_r[..., -1])
    assert repind_loss(clean_v[..., -1:], abl_r_v[..., -1:], clean_r[..., -1:], abl_v_r[..., -1:],
                       torch.ones(1, 1)).item() == pytest.approx(last.item())


def test_token_traces_of_batches_equal_each_prompt_alone(tiny):
    """tokens="all": the cache (full rows, left padding) and the ablation forward (shared prefix,
    prompt + target) record each prompt's own tokens after the system prompt, equal to a run of
    that prompt alone; the last window token is the last-token trace."""
    from refusal_tl.repind.traces import user_token_counts

    pairs, layers = mixed_pairs(), [0, 2]
    V, r = torch.stack([_rand(32, 2)]), _rand(32, 9)
    cache = TraceCache(tiny, pairs, V, layers, batch_size=3, tokens="all")
    idx = [0, 1, 2, 3]
    counts = user_token_counts(tiny, [p.answer.prompt for p in pairs])
    assert len(set(counts.tolist())) > 1  # rows of different lengths: the windows really are aligned
    clean, abl_v = cache.get(idx, "cpu")
    mask = cache.mask(idx, "cpu")
    with torch.no_grad():
        _, abl_r = ablation_with_traces(tiny, r, pairs, idx, layers, cache.width(idx))
    assert clean.shape == (4, len(layers), cache.width(idx), 32) and abl_r.shape == clean.shape
    for i, pair in enumerate(pairs):
        alone = tiny.chat.tokenize([pair.answer.prompt], share_prefix=False)
        n = int(counts[i])
        assert mask[i].sum() == n and mask[i, -n:].all()
        with torch.no_grad():
            torch.testing.assert_close(clean[i, :, -n:], resid_traces(tiny, alone, layers, tokens=n)[0],
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(abl_v[i, 0, :, -n:], resid_traces(tiny, alone, layers, V[0], tokens=n)[0],
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(abl_r[i, :, -n:], resid_traces(tiny, alone, layers, r, tokens=n)[0],
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(clean[i, :, -1], resid_traces(tiny, alone, layers)[0], atol=1e-5, rtol=1e-4)


def test_repind_gradient_matches_finite_differences():
    model = make_tiny(seed=1)
    model.hf_model.double()
    prompts, layers = PROMPTS[:1], list(range(model.n_layers))  # float64 + left padding gives NaN rows in HF
    batch = model.chat.tokenize(prompts, share_prefix=False)
    V = _rand(32, 2).double()[None]
    with torch.no_grad():
        clean = resid_traces(model, batch, layers).double()
        abl_v = resid_traces(model, batch, layers, V[0])[:, None].double()

    def loss(r):
        abl_r = resid_traces(model, batch, layers, r)
        return repind_from_resid(r, V, clean, abl_v, abl_r).sum()

    r = _rand(32, 7).double().requires_grad_(True)
    with torch.enable_grad():
        loss(r).backward()
    u = _rand(32, 8).double()
    eps = 1e-2  # HF's RMSNorm and rotary embeddings compute in float32 even in a float64 model:
    with torch.no_grad():  # a smaller step drowns in that rounding
        f = lambda h: loss(r + h * eps * u) - loss(r - h * eps * u)
        fd = (8 * f(1) - f(2)) / (12 * eps)  # fourth-order central difference
    assert float(r.grad @ u) == pytest.approx(float(fd), rel=1e-3)
    assert r.grad.norm() > 0


def test_cached_traces_equal_recomputed_ones(tiny):
    """The cache (shared-prefix batches) and the traces read from the ablation forward (prompt +
    target, left padding) equal traces of each prompt alone."""
    pairs, layers = mixed_pairs(), list(range(tiny.n_layers - 1))
    V = torch.stack([_rand(32, 2), _rand(32, 3)])
    cache = TraceCache(tiny, pairs, V, layers, batch_size=3)
    clean, abl_v = cache.get([0, 1, 2, 3], "cpu")
    r = _rand(32, 9)
    with torch.no_grad():
        _, abl_r = ablation_with_traces(tiny, r, pairs, [0, 1, 2, 3], layers)
    for i, pair in enumerate(pairs):
        alone = tiny.chat.tokenize([pair.answer.prompt], share_prefix=False)
        with torch.no_grad():
            torch.testing.assert_close(clean[i], resid_traces(tiny, alone, layers)[0], atol=1e-5, rtol=1e-4)
            for j in range(2):
                torch.testing.assert_close(abl_v[i, j], resid_traces(tiny, alone, layers, V[j])[0],
                                           atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(abl_r[i], resid_traces(tiny, alone, layers, r)[0], atol=1e-5, rtol=1e-4)


def test_sequential_and_span_ablation_agree_for_orthogonal_directions_and_differ_otherwise(tiny):
    batch = tiny.chat.tokenize(PROMPTS[:4])
    a, b = _rand(32, 1), _rand(32, 2)
    b_perp = b - (b @ a) / (a @ a) * a
    with torch.no_grad():
        for other, same in ((b_perp, True), (b, False)):
            d = torch.stack([a, other])
            span = last_logits(tiny, batch, ablation_hooks(d, tiny.n_layers))
            seq = last_logits(tiny, batch, ablation_hooks(d, tiny.n_layers, sequential=True))
            if same:
                torch.testing.assert_close(span, seq, atol=1e-4, rtol=1e-4)
            else:
                assert (span - seq).abs().max() > 1e-3


def test_trace_errors_name_the_fix(tiny):
    with pytest.raises(RefusalTLError, match="prompt file is empty"):
        cosine_traces(tiny, [], _rand(32, 1))
    with pytest.raises(RefusalTLError, match="width 16 but the model's d_model is 32"):
        cosine_traces(tiny, PROMPTS[:2], _rand(32, 1), torch.randn(16))


def test_trace_cache_bounded_by_max_bytes_recomputes_the_same_traces(tiny):
    pairs, layers, V = mixed_pairs(), [0, 1], torch.stack([_rand(32, 2)])
    full = TraceCache(tiny, pairs, V, layers, batch_size=2, tokens="all")
    small = TraceCache(tiny, pairs, V, layers, batch_size=2, tokens="all", max_bytes=1)
    for idx in ([0, 1], [2, 3], [0, 1]):
        a, b = full.get(idx, "cpu"), small.get(idx, "cpu")
        torch.testing.assert_close(a, b)
        assert set(small.clean) == set(idx)  # everything else was evicted
    assert set(full.clean) == {0, 1, 2, 3}
