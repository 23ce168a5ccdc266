"""Several directions in one forward (one direction per batch row) equal one at a time (tiny Qwen)."""

import pytest
import torch

from helpers import PROMPTS
from refusal_tl.errors import RefusalTLError
from refusal_tl.steer.forward import kl_to_base, map_last_logits, refusal_scores
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import ablate_rows_hook, intervention_hooks, row_hooks
from refusal_tl.steer.multi import multi_generate, multi_kl, multi_refusal_scores


@pytest.fixture
def dirs(tiny):
    return 3.0 * torch.nn.functional.normalize(torch.randn(3, tiny.d_model, generator=torch.Generator().manual_seed(1)),
                                               dim=-1)


def test_row_hook_ablates_each_row_along_its_own_direction():
    act, units = torch.randn(2, 5, 8), torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    out = ablate_rows_hook(act, units=units)
    assert torch.allclose(torch.einsum("bpd,bd->bp", out, units), torch.zeros(2, 5), atol=1e-6)
    other = torch.einsum("bpd,bd->bp", out, units.flip(0))  # row 0 keeps row 1's direction
    assert other.abs().max() > 1e-2


def test_row_hooks_refuse_a_shared_prefix_batch():
    units = torch.randn(3, 8)
    _, fn = row_hooks("ablate", units, 1)[0]
    with pytest.raises(RefusalTLError, match="share_prefix=False"):
        fn(torch.randn(1, 4, 8))


@pytest.mark.parametrize("kind", ["ablate", "add", "subtract"])
def test_multi_scores_equal_one_direction_at_a_time(tiny, dirs, kind):
    batched = multi_refusal_scores(tiny, PROMPTS, dirs, kind, layer=1, batch_size=7)
    for m, v in enumerate(dirs):
        single = refusal_scores(tiny, PROMPTS, intervention_hooks(kind, v, tiny.n_layers, 1))
        assert torch.allclose(batched[m], single, atol=1e-4), (kind, m)


def test_multi_kl_equals_one_direction_at_a_time(tiny, dirs):
    base = map_last_logits(tiny, PROMPTS, lambda lg, idx: lg, [])
    batched = multi_kl(tiny, PROMPTS, base, dirs, batch_size=5)
    for m, v in enumerate(dirs):
        single = kl_to_base(tiny, PROMPTS, base, intervention_hooks("ablate", v, tiny.n_layers))
        assert torch.allclose(batched[m], single, atol=1e-5)


@pytest.mark.parametrize("kind", ["ablate", "add"])
def test_multi_generate_equals_one_generate_loop_per_direction(tiny, dirs, kind):
    batched = multi_generate(tiny, PROMPTS, dirs, kind, layer=1, max_new_tokens=6, batch_size=10, desc=None)
    for m, v in enumerate(dirs):
        assert batched[m] == generate(tiny, PROMPTS, 6, intervention_hooks(kind, v, tiny.n_layers, 1), desc=None)



@pytest.mark.parametrize("per_row", [False, True])
def test_finished_rows_leave_the_batch_without_changing_the_others(tiny, dirs, monkeypatch, per_row):
    from refusal_tl.steer import generation

    batch = tiny.chat.tokenize(PROMPTS[:3], share_prefix=not per_row)  # per-row hooks need whole prompts
    fixed = row_hooks("ablate", dirs, tiny.n_layers) if per_row else []
    fwd = (lambda rows: row_hooks("ablate", dirs[rows], tiny.n_layers)) if per_row else []
    full = generation.greedy_tokens(tiny, batch, 8, fixed, stop_at_eos=False)
    stop = int(full[1, 2])  # row 1 ends at its third token; rows without it run on alone
    ends = [next((k for k, t in enumerate(row) if t == stop), None) for row in full.tolist()]
    assert any(e is None or e > 2 for e in ends), "the test needs a row that outlives row 1"
    monkeypatch.setattr(generation, "stop_ids", lambda model: [stop])
    ended = generation.greedy_tokens(tiny, batch, 8, fwd)
    torch.testing.assert_close(ended, generation.greedy_tokens(tiny, batch, 8, fixed, drop_finished=False))
    pad = tiny.tokenizer.pad_token_id
    for row, end in enumerate(ends):
        n = 8 if end is None else end + 1
        assert ended[row, :n].tolist() == full[row, :n].tolist()
        assert (ended[row, n:] == pad).all()
