import torch

from helpers import PROMPTS
from refusal_tl.dim.extract import dim_candidates, eoi_activations, filter_by_score, mean_diff


def test_eoi_activations_match_run_with_cache(tiny):
    acts = eoi_activations(tiny, PROMPTS[:3], batch_size=2)
    n = tiny.chat.n_eoi
    for i, prompt in enumerate(PROMPTS[:3]):
        b = tiny.chat.tokenize([prompt])
        _, cache = tiny.bridge.run_with_cache(b.ids, attention_mask=b.mask)
        for l in range(tiny.n_layers):
            expected = cache[f"blocks.{l}.hook_resid_pre"][0, -n:]
            torch.testing.assert_close(acts.acts[i, :, l], expected, atol=1e-5, rtol=1e-5)


def test_stopping_early_gives_same_activations(tiny):
    full = eoi_activations(tiny, PROMPTS, batch_size=3, with_scores=True)
    early = eoi_activations(tiny, PROMPTS, batch_size=3, with_scores=False)
    torch.testing.assert_close(full.acts, early.acts)
    assert torch.isfinite(full.scores).all() and torch.isnan(early.scores).all()


def test_mean_diff_in_float64():
    a = torch.randn(6, 2, 3, 4) + 1e4  # large offset: float32 accumulation would lose digits
    b = torch.randn(5, 2, 3, 4) + 1e4
    expected = a.double().mean(0) - b.double().mean(0)
    torch.testing.assert_close(mean_diff(a, b).double(), expected, atol=1e-3, rtol=0)


def test_candidates_grid_shape(tiny):
    h = eoi_activations(tiny, PROMPTS[:4], 4)
    s = eoi_activations(tiny, PROMPTS[4:], 4)
    c = dim_candidates(h, s, list(range(-tiny.chat.n_eoi, 0)))
    assert c.vectors.shape == (tiny.chat.n_eoi, tiny.n_layers, tiny.d_model)
    expected = h.acts[:, -1, 2].double().mean(0) - s.acts[:, -1, 2].double().mean(0)
    torch.testing.assert_close(c.get(-1, 2), expected.float())


def test_filter_by_score_keeps_refused_harmful_and_truncates_harmless():
    harm = torch.tensor([1.0, -2.0, 0.5, 0.0])
    safe = torch.tensor([-1.0, 2.0, -3.0, -0.5, -0.1])
    kh, ks = filter_by_score(harm, safe)
    assert kh == [0, 2]
    assert ks == [0, 2]  # harmless with score < 0, truncated to the harmful count


def test_filter_can_keep_all_complying_harmless():
    kh, ks = filter_by_score(torch.tensor([1.0, -1.0]), torch.tensor([-1.0, -2.0, 3.0, -0.5]), truncate_harmless=False)
    assert kh == [0] and ks == [0, 1, 3]


def test_profiles_and_overrides():
    from refusal_tl import profiles
    from refusal_tl.dim.config import DimConfig

    cpu = DimConfig.from_profile("cpu")
    assert (cpu.n_train, cpu.n_val, cpu.n_val_harmless) == (128, 48, 32)
    assert cpu.n_train == profiles.PROFILES["cpu"]["dim"]["n_train"]
    assert DimConfig.from_profile("cpu", n_val=20).n_val_harmless is None
    assert DimConfig.from_profile("cpu", n_val=20, n_val_harmless=10).n_val_harmless == 10
