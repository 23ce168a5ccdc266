"""bfloat16 against float32 on the tiny Qwen, Gemma 2 and Llama models (docs/algorithms.md §11).

The bf16 model is the float32 one with its weights rounded to bf16. Tolerances, as measured when
these tests were written (the margin is about 3× or more):

- **hooks ≡ baked weights**: in bf16 the baked model's last-token logits are within 5 % of the
  logits' range of the hooked ones (measured ≤ 1.6 %: 0.12 of a range of 7.7), and both within 5 % of float32
  hook ablation. bf16 keeps 8 mantissa bits (0.4 % per rounding); these random 4–5-block models
  have logits of a few units. Gemma 2 bakes nothing (post-norms), so it is not in that test.
- **efficient ≡ reference steps** (RDO, cone, RepInd) in bf16: the same losses to 1e-5 relative
  (measured ≤ 5e-8) and gradients with cosine ≥ 0.9999 (measured ≥ 0.99997); the efficient bf16
  step is within 3 % of the float32 one per loss term (measured ≤ 1.5 %) with gradient cosine
  ≥ 0.995 (measured ≥ 0.9987).
- **cached ≡ full generation**: the same greedy tokens in bf16 (exact, as in float32).

The float32 golden tests elsewhere are unchanged.
"""

import pytest
import torch

from helpers import PROMPTS, make_hf_model, make_tiny, make_tokenizer, mixed_pairs
from refusal_tl.cone import ConeConfig, grow
from refusal_tl.cone.step import cone_step_losses, reference_cone_step
from refusal_tl.model import wrap_hf_model
from refusal_tl.rdo import RdoConfig
from refusal_tl.rdo.step import Prepared, reference_step, step_losses
from refusal_tl.repind import RepIndConfig
from refusal_tl.repind.step import TraceCache, reference_repind_step, repind_step_losses
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.generation import greedy_tokens
from refusal_tl.steer.hooks import ablation_hooks, intervention_hooks, orthogonalize_weights
from refusal_tl.steer.windows import pair_lengths

FAMILIES = ["qwen", "gemma2", "llama"]
LOGIT_TOL = 0.05  # of the logits' range
LOSS_EQUAL, GRAD_EQUAL = 1e-5, 0.9999  # efficient vs reference, both bf16
LOSS_CLOSE, GRAD_CLOSE = 3e-2, 0.995  # bf16 vs float32


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request):
    """(float32 model, bf16 model) of one family, the same random weights."""
    return make_tiny(family=request.param), make_tiny(family=request.param, dtype=torch.bfloat16)


def _direction(seed: int = 0) -> torch.Tensor:
    return torch.randn(32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_bf16_hooks_equal_baked_weights(family):
    m32, m16 = make_tiny(family=family), make_tiny(family=family, dtype=torch.bfloat16)
    assert m16.dtype == torch.bfloat16 and m16.dtype_name == "bfloat16"
    r, batch = _direction(), m32.chat.tokenize(PROMPTS)
    hooked32 = last_logits(m32, batch, ablation_hooks(r, m32.n_layers))
    hooked16 = last_logits(m16, batch, ablation_hooks(r, m16.n_layers))
    tok = make_tokenizer(family)
    hf = make_hf_model(tok, 0, family).to(torch.bfloat16)
    orthogonalize_weights(hf, r)
    assert next(hf.parameters()).dtype == torch.bfloat16
    baked16 = last_logits(wrap_hf_model(hf, tok, name="baked", device="cpu"), batch)
    tol = LOGIT_TOL * float(hooked32.max() - hooked32.min())
    print(f"{family}: tol {tol:.3f}; |baked16 − hooked16| {(baked16 - hooked16).abs().max():.3f}, "
          f"|hooked16 − hooked32| {(hooked16 - hooked32).abs().max():.3f}")
    assert hooked16.dtype == torch.float32  # last_logits upcasts
    assert (baked16 - hooked16).abs().max() <= tol
    assert (hooked16 - hooked32).abs().max() <= tol and (baked16 - hooked32).abs().max() <= tol
    assert (last_logits(m16, batch) - hooked16).abs().max() > tol  # the ablation is larger than the noise


def _grad_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def _check(fast16: tuple[dict, torch.Tensor], slow16: tuple[dict, torch.Tensor], fast32: tuple[dict, torch.Tensor]):
    (l16, g16), (ls, gs), (l32, g32) = fast16, slow16, fast32
    for term, v in l16.items():
        assert v == pytest.approx(ls[term], rel=LOSS_EQUAL, abs=1e-9), (term, l16, ls)
        assert v == pytest.approx(l32[term], rel=LOSS_CLOSE), (term, l16, l32)
        assert v > 0
    assert _grad_cos(g16, gs) >= GRAD_EQUAL
    assert _grad_cos(g16, g32) >= GRAD_CLOSE
    assert g16.dtype == torch.float32 and g16.norm() > 0  # the direction stays float32


def _run(step, rows: torch.Tensor) -> tuple[dict, torch.Tensor]:
    p = torch.nn.Parameter(rows.clone())
    with torch.enable_grad():
        losses = step(p)
    return losses, p.grad.clone()


def test_bf16_rdo_step_equals_reference_and_float32(pair):
    pairs, group, cfg = mixed_pairs(), [0, 1, 2, 3], RdoConfig(micro_batch=3, retain_kl="code")
    fast = lambda m: lambda p: step_losses(m, p, 3.0, 2, pairs, group, Prepared(m, pairs, 2), pair_lengths(m, pairs),
                                           cfg)
    r = _direction(1)[None]
    _check(_run(fast(pair[1]), r), _run(lambda p: reference_step(pair[1], p, 3.0, 2, pairs, group, cfg), r),
           _run(fast(pair[0]), r))


def test_bf16_cone_step_equals_reference_and_float32(pair):
    pairs, group = mixed_pairs(), [0, 2, 3, 1]
    cfg = ConeConfig(n_samples=2, accumulation=4, micro_batch=3, retain_kl="code")
    fast = lambda m: lambda p: cone_step_losses(m, p, 2.0, 1, pairs, group, Prepared(m, pairs, 1),
                                                pair_lengths(m, pairs), cfg, step=3)
    rows = grow(None, 2, 32, 0)
    _check(_run(fast(pair[1]), rows),
           _run(lambda p: reference_cone_step(pair[1], p, 2.0, 1, pairs, group, cfg, step=3), rows),
           _run(fast(pair[0]), rows))


def test_bf16_repind_step_equals_reference_and_float32(pair):
    """Micro-batches of 3 and 1 (a one-row batch whose shared prefix is recorded first, then overwritten)."""
    pairs, group = mixed_pairs(), [0, 1, 2, 3]
    V = torch.stack([_direction(2), _direction(3)])
    cfg = RepIndConfig(micro_batch=3, retain_kl="code", layer_fraction=0.8)
    layers = cfg.ind_layers(pair[0].n_layers)
    fast = lambda m: lambda p: repind_step_losses(m, p, 3.0, 2, pairs, group, Prepared(m, pairs, 2),
                                                  TraceCache(m, pairs, V, layers, 3), pair_lengths(m, pairs), cfg)
    r = _direction(1)[None]
    _check(_run(fast(pair[1]), r),
           _run(lambda p: reference_repind_step(pair[1], p, 3.0, 2, pairs, group, V, cfg), r),
           _run(fast(pair[0]), r))


@pytest.mark.parametrize("kind", ["none", "ablate"])
def test_bf16_cached_generation_equals_full_forwards(pair, kind):
    model = pair[1]
    hooks = intervention_hooks(kind, _direction(5), model.n_layers)
    batch = model.chat.tokenize(PROMPTS[:4])
    cached = greedy_tokens(model, batch, 6, hooks, stop_at_eos=False)
    ids, mask, full = batch.ids, batch.mask, []
    for step in range(cached.shape[1]):  # teacher-forced on the cached tokens: every step compared
        full.append(last_logits(model, type(batch)(ids, mask), hooks).argmax(-1))
        nxt = cached[:, step]
        ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
    assert torch.equal(cached, torch.stack(full, 1))
