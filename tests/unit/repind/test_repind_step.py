"""The efficient RepInd step equals the straightforward one; training, resume, the run (tiny model)."""

import json

import pytest
import torch

from helpers import mixed_pairs, tiny_pairs
from refusal_tl.geometry import RefusalDirection
from refusal_tl.rdo.step import Prepared
from refusal_tl.repind import RepIndConfig, RepIndRunConfig, run_repind, train_repind
from refusal_tl.repind.step import TraceCache, reference_repind_step, repind_step_losses
from refusal_tl.steer.windows import pair_lengths


def _V(d, *seeds):
    return torch.stack([torch.randn(d, generator=torch.Generator().manual_seed(s)) for s in seeds])


@pytest.mark.parametrize("n_v,tokens", [(1, "last"), (2, "last"), (2, "all")])
def test_efficient_repind_step_equals_straightforward_step(tiny, n_v, tokens):
    """Cached traces + traces read from the ablation forward == 3·|V| extra forwards per example
    (at the last token, and averaged over the prompt's tokens)."""
    pairs, group, V = mixed_pairs(), [0, 1, 2, 3], _V(tiny.d_model, 2, 3)[:n_v]
    cfg = RepIndConfig(micro_batch=3, retain_kl="code", layer_fraction=0.8, tokens=tokens)
    layers = cfg.ind_layers(tiny.n_layers)
    grads, losses = [], []
    for efficient in (True, False):
        r = torch.nn.Parameter(torch.randn(1, tiny.d_model, generator=torch.Generator().manual_seed(1)))
        if efficient:
            out = repind_step_losses(tiny, r, 3.0, 2, pairs, group, Prepared(tiny, pairs, 2),
                                     TraceCache(tiny, pairs, V, layers, 3, tokens), pair_lengths(tiny, pairs), cfg)
        else:
            out = reference_repind_step(tiny, r, 3.0, 2, pairs, group, V, cfg)
        losses.append(out)
        grads.append(r.grad.clone())
    for name in ("abl", "add", "ret", "ind"):
        assert losses[0][name] == pytest.approx(losses[1][name], rel=1e-5, abs=1e-9), (name, losses)
        assert losses[0][name] > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].norm() > 0


def test_ind_weight_zero_gives_the_rdo_step(tiny):
    from refusal_tl.rdo import RdoConfig
    from refusal_tl.rdo.step import step_losses

    pairs, group, V = mixed_pairs(), [0, 1, 2, 3], _V(tiny.d_model, 2)
    grads = []
    for cfg in (RepIndConfig(micro_batch=2, ind_weight=0.0), RdoConfig(micro_batch=2)):
        r = torch.nn.Parameter(torch.randn(1, tiny.d_model, generator=torch.Generator().manual_seed(1)))
        prep, lengths = Prepared(tiny, pairs, 2), pair_lengths(tiny, pairs)
        if isinstance(cfg, RepIndConfig):
            repind_step_losses(tiny, r, 3.0, 2, pairs, group, prep, TraceCache(tiny, pairs, V, [0, 1]), lengths, cfg)
        else:
            step_losses(tiny, r, 3.0, 2, pairs, group, prep, lengths, cfg)
        grads.append(r.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_training_lowers_the_independence_loss_and_resumes_exactly(tiny, tmp_path):
    pairs, V = tiny_pairs(8), _V(tiny.d_model, 2)
    cfg = RepIndConfig(accumulation=2, epochs=2, lr=0.05, weights={"abl": 0.0, "add": 0.0, "ret": 0.0})
    full = train_repind(tiny, pairs, 3.0, 2, V, cfg, progress=False)
    assert len(full.history) == 8
    assert full.history[-1]["ind"] < full.history[0]["ind"]  # only L_ind is trained here
    ckpt = tmp_path / "c.safetensors"
    train_repind(tiny, pairs, 3.0, 2, V, cfg, ckpt, max_steps=3, progress=False)
    resumed = train_repind(tiny, pairs, 3.0, 2, V, cfg, ckpt, progress=False)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history],
                                                                       rel=1e-5)
    torch.testing.assert_close(resumed.rows, full.rows)
    other = train_repind(tiny, pairs, 3.0, 2, _V(tiny.d_model, 9), cfg, ckpt, progress=False)  # another V
    torch.testing.assert_close(other.rows, train_repind(tiny, pairs, 3.0, 2, _V(tiny.d_model, 9), cfg,
                                                        progress=False).rows)  # trained afresh, not resumed
    assert len(list(tmp_path.glob("c-*.safetensors"))) == 1  # the first V's run, kept aside


def test_run_repind_iterates_and_resumes(tiny, tmp_path):
    """K = 2 directions with 2 candidates each on the tiny model; V grows; a rerun trains nothing."""
    run = tmp_path / "run"
    dim = RefusalDirection(3 * _V(tiny.d_model, 4)[0], layer=2, pos=-1, model=tiny.name, weights_sha="tiny")
    dim.save(run / "dim" / "direction.safetensors")
    (run / "dim" / "metadata.json").write_text(json.dumps({"config": {"n_train": 8, "n_val": 4,
                                                                       "filter_prompts": False}}))
    cfg = RepIndRunConfig(model=tiny.name, profile="ci", k=2, candidates=2, n_train=8, filter_prompts=False, n_val=4,
                          repind=RepIndConfig(accumulation=4, epochs=1))
    res = run_repind(cfg, run, tiny, progress=False)
    assert [d.provenance.k for d in res.directions] == [1, 2]
    assert res.directions[1].provenance.independent_of == 2  # DIM and RepInd-1
    for k, cands in enumerate(res.candidates, start=1):
        assert [c["seed"] for c in cands] == [42 + 1000 * (k - 1), 43 + 1000 * (k - 1)]
        best = min(cands, key=lambda c: c["val_refusal_score"])
        assert res.directions[k - 1].provenance.candidate == best["candidate"]
        assert (run / f"repind-{k}" / "direction.safetensors").is_file()
        assert res.directions[k - 1].norm == pytest.approx(dim.norm, rel=1e-5)
    before = (run / "repind-2" / "metadata.json").stat().st_mtime_ns
    again = run_repind(cfg, run, tiny, progress=False)
    assert (run / "repind-2" / "metadata.json").stat().st_mtime_ns == before
    torch.testing.assert_close(again.directions[1].vector, res.directions[1].vector)

