"""Abliteration variants: hook ≡ weights on the tiny Qwen and Llama, the kernel, biprojection,
the fractional index, MPOA's norms (docs/algorithms.md §14)."""

import math

import pytest
import torch

from helpers import PROMPTS, make_hf_model, make_tiny, make_tokenizer
from refusal_tl.errors import RefusalTLError
from refusal_tl.model.load import wrap_hf_model
from refusal_tl.steer.edit import (
    Edit,
    Kernel,
    apply_edit,
    biproject,
    edit_hooks,
    fractional_direction,
    norm_scales,
    writers,
)
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.hooks import ablation_hooks


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _edits(n_layers, d):
    per_layer = _rand(n_layers, 1, d, seed=4)
    kernel = Kernel(max_weight=1.3, max_weight_position=2.0, min_weight=0.4, min_weight_distance=1.5)
    return {
        "projection": Edit.of(_rand(d, seed=1), n_layers),
        "kernel": Edit.of(_rand(d, seed=1), n_layers, attn=kernel, mlp=Kernel(0.9, 1.0, 0.2, 3.0), embed=0.5),
        "span": Edit.of(_rand(2, d, seed=2), n_layers, attn=kernel, embed=1.0),
        "per-layer": Edit.of(per_layer, n_layers, mlp=kernel),
        "mpoa": Edit.of(_rand(d, seed=1), n_layers, attn=kernel, mlp=kernel, norm_preserving=True),
        "mpoa-span": Edit.of(_rand(2, d, seed=2), n_layers, norm_preserving=True, embed=1.0),
    }


@pytest.mark.parametrize("family", ["qwen", "llama"])
@pytest.mark.parametrize("variant", ["projection", "kernel", "span", "per-layer", "mpoa", "mpoa-span"])
def test_hooks_equal_the_weight_edit(family, variant):
    """Every variant is a linear map of each writer's output: the hooks and the baked weights
    give the same logits (float32), and the edit changes them."""
    model = make_tiny(family=family)
    edit = _edits(model.n_layers, model.d_model)[variant]
    batch = model.chat.tokenize(PROMPTS)
    with torch.no_grad():
        clean = last_logits(model, batch)
        hooked = last_logits(model, batch, edit_hooks(model, edit))
        tok = make_tokenizer(family)
        hf = make_hf_model(tok, seed=0, family=family)  # the fixture's weights
        apply_edit(hf, edit)
        baked = last_logits(wrap_hf_model(hf, tok, name=f"tiny-{family}-baked", device="cpu"), batch)
    assert (clean - hooked).abs().max() > 1e-3
    torch.testing.assert_close(baked, hooked, atol=1e-4, rtol=1e-4)


def test_standard_edit_is_the_ablation_of_section_2(tiny):
    r = _rand(tiny.d_model, seed=3)
    batch = tiny.chat.tokenize(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(last_logits(tiny, batch, edit_hooks(tiny, Edit.ablation(r, tiny.n_layers))),
                                   last_logits(tiny, batch, ablation_hooks(r, tiny.n_layers)), atol=1e-5, rtol=1e-5)


def test_kernel_matches_heretics_definition():
    k = Kernel(max_weight=1.2, max_weight_position=3.0, min_weight=0.3, min_weight_distance=2.0)
    # distance 0 -> 1.2; 1 -> 1.2 + 0.5 * (0.3 - 1.2) = 0.75; 2 -> 0.3; beyond 2 -> 0
    torch.testing.assert_close(k.weights(7), torch.tensor([0.0, 0.3, 0.75, 1.2, 0.75, 0.3, 0.0]))
    torch.testing.assert_close(Kernel.flat(0.7).weights(3), torch.full((3,), 0.7))
    with pytest.raises(RefusalTLError, match="min_weight_distance"):
        Kernel(min_weight_distance=0.0)


def test_biprojection_is_orthogonal_to_the_harmless_mean_and_keeps_the_rest():
    r, m = _rand(16, seed=1), _rand(16, seed=2)
    b = biproject(r, m)
    assert abs(float(b @ m)) < 1e-5 and b.norm() == pytest.approx(float(r.norm()))
    resid = r - (r @ m) / (m @ m) * m  # the part of r that m does not carry
    assert float(torch.cosine_similarity(b, resid, dim=0)) == pytest.approx(1.0, abs=1e-6)


def test_fractional_index_interpolates_between_layers():
    per_layer = torch.stack([torch.eye(4)[0] * 2, torch.eye(4)[1], torch.eye(4)[2]])
    torch.testing.assert_close(fractional_direction(per_layer, 1.0), torch.eye(4)[1])
    half = fractional_direction(per_layer, 0.5)
    torch.testing.assert_close(half, torch.tensor([1.0, 1.0, 0.0, 0.0]) / math.sqrt(2))
    torch.testing.assert_close(fractional_direction(per_layer, 2.0), torch.eye(4)[2])
    with pytest.raises(RefusalTLError, match="outside the model's layers"):
        fractional_direction(per_layer, 2.5)


def test_mpoa_restores_every_row_norm_and_is_not_a_projection(tiny):
    """The baked weights keep their row norms (the point of MPOA) and, unlike a projection, keep
    a component along the direction."""
    r = _rand(tiny.d_model, seed=1)
    hf = make_hf_model(make_tokenizer(), seed=0)
    before = {k: m.weight.detach().clone() for k, m in writers(hf).items()}
    apply_edit(hf, Edit.of(r, tiny.n_layers, norm_preserving=True))
    u = r / r.norm()
    for key, module in writers(hf).items():
        torch.testing.assert_close(module.weight.norm(dim=1), before[key].norm(dim=1), atol=1e-5, rtol=1e-5)
        assert (u @ module.weight).abs().max() > 1e-3  # not projected out
        assert not torch.allclose(module.weight, before[key])
    s_in, s_out = norm_scales(before[(0, "attn")], u[None], 1.0)
    torch.testing.assert_close(s_in * s_out, 1 / (before[(0, "attn")] * s_in[:, None]
                                                 - u[:, None] * (u @ (before[(0, "attn")] * s_in[:, None]))
                                                 ).norm(dim=1))


def test_edits_refuse_a_wrong_width_and_gemma(tiny):
    with pytest.raises(RefusalTLError, match="width 7 but the model's d_model is 32"):
        edit_hooks(tiny, Edit.of(torch.ones(7), tiny.n_layers))
    gemma = make_tiny(family="gemma2")
    with pytest.raises(RefusalTLError, match="post-norms"):
        apply_edit(gemma.hf_model, Edit.of(torch.ones(gemma.d_model), gemma.n_layers))


def test_a_layer_without_a_direction_is_left_unedited(tiny):
    """Per-layer DIM is 0 at layer 0 (the template's embeddings are shared): that layer gets no edit, not NaN."""
    per_layer = _rand(tiny.n_layers, 1, tiny.d_model, seed=4)
    per_layer[0] = 0
    batch = tiny.chat.tokenize(PROMPTS)
    for mpoa in (False, True):
        edit = Edit.of(per_layer, tiny.n_layers, embed=1.0, norm_preserving=mpoa)
        assert torch.isfinite(last_logits(tiny, batch, edit_hooks(tiny, edit))).all()
