import math

import pytest
import torch

from helpers import PROMPTS
from refusal_tl.dim.extract import dim_candidates, eoi_activations
from refusal_tl.dim.select import SelectionConfig, discard_reason, select_direction
from refusal_tl.errors import RefusalTLError

CFG = SelectionConfig()


@pytest.mark.parametrize("layer,bypass,induce,kl,reason", [
    (3, -1.0, 0.5, 0.05, ""),
    (20, -1.0, 0.5, 0.05, "late layer"),       # int(24 * 0.8) = 19
    (19, -1.0, 0.5, 0.05, "late layer"),
    (18, -1.0, 0.5, 0.05, ""),
    (3, -1.0, 0.5, 0.2, "KL > 0.1"),
    (3, -1.0, -0.1, 0.05, "induce < 0.0"),
    (3, -1.0, 0.0, 0.1, ""),                    # thresholds are inclusive
    (3, math.nan, 0.5, 0.05, "nan"),
    (3, -1.0, math.nan, 0.05, "nan"),
    (3, math.nan, math.nan, 0.2, "KL > 0.1"),   # pruned: KL decides before the skipped scores
])
def test_discard_reason(layer, bypass, induce, kl, reason):
    assert discard_reason(layer, 24, bypass, induce, kl, CFG) == reason


@pytest.fixture(scope="module")
def candidates(tiny):
    h = eoi_activations(tiny, PROMPTS[:4], 4)
    s = eoi_activations(tiny, PROMPTS[4:], 4)
    return dim_candidates(h, s, list(range(-tiny.chat.n_eoi, 0)))


def test_selection_picks_lowest_admissible_bypass(tiny, candidates):
    cfg = SelectionConfig(kl_threshold=10.0, induce_threshold=-100.0, prune=False)
    sel = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], cfg)
    t = sel.table
    assert len(t) == tiny.chat.n_eoi * tiny.n_layers
    assert t[t.layer >= int(tiny.n_layers * 0.8)].filtered.all()
    ok = t[~t.filtered]
    assert sel.best.bypass == ok.bypass.min()
    assert sel.relaxed == ()


def test_restricted_positions_score_only_those_and_pick_the_best_among_them(tiny, candidates):
    cfg = SelectionConfig(kl_threshold=10.0, induce_threshold=-100.0, prune=False)
    full = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], cfg).table
    sel = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], SelectionConfig(
        kl_threshold=10.0, induce_threshold=-100.0, prune=False, positions=(-2, -1)))
    t = sel.table
    assert len(t) == len(full) and sel.pos in (-2, -1)
    assert (t[t.pos < -2].reason == "position not searched").all() and t[t.pos < -2].kl.isna().all()
    searched = full[full.pos >= -2]
    torch.testing.assert_close(torch.tensor(t[t.pos >= -2].kl.values), torch.tensor(searched.kl.values), equal_nan=True)
    assert sel.best.bypass == searched[~searched.filtered].bypass.min()
    with pytest.raises(RefusalTLError, match=r"position\(s\) \[-9\] are not post-instruction positions"):
        select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], SelectionConfig(positions=(-9,)))


def test_selection_relaxes_induce_only_when_nothing_passes(tiny, candidates):
    cfg = SelectionConfig(kl_threshold=10.0, induce_threshold=1e9)
    sel = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], cfg)
    assert sel.relaxed == ("induce",)
    with pytest.raises(RefusalTLError, match="no DIM candidate"):
        select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], SelectionConfig(kl_threshold=-1.0))


def test_selection_resumes_from_checkpoint(tiny, candidates, tmp_path):
    cfg = SelectionConfig(kl_threshold=10.0, induce_threshold=-100.0)
    ckpt = tmp_path / "partial.jsonl"
    first = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], cfg, checkpoint=ckpt)
    lines = ckpt.read_text().splitlines()
    ckpt.write_text("\n".join(lines[:5]) + "\n" + lines[5][:10])  # interrupted mid-write
    resumed = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:], cfg, checkpoint=ckpt)
    assert (resumed.pos, resumed.layer) == (first.pos, first.layer)
    torch.testing.assert_close(torch.tensor(resumed.table.bypass.values), torch.tensor(first.table.bypass.values),
                               equal_nan=True)


def test_admissible_column_follows_relaxation(tiny, candidates):
    strict = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:],
                              SelectionConfig(kl_threshold=10.0, induce_threshold=-100.0))
    assert (strict.table.admissible == ~strict.table.filtered).all()
    relaxed = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:],
                               SelectionConfig(kl_threshold=10.0, induce_threshold=1e9))
    assert relaxed.table.admissible.any() and relaxed.table.filtered.all()
    from refusal_tl.plotting import kl_scores, selection_landscape

    assert len(selection_landscape(relaxed).data) > 0 and len(kl_scores(relaxed).data) > 0


def test_pruning_skips_induce_and_bypass_of_kl_discarded_candidates_and_keeps_the_winner(tiny, candidates,
                                                                                         monkeypatch):
    from refusal_tl.eval.scorer import Scorer

    calls = {"induce": 0, "bypass": 0}
    for name in calls:
        original = getattr(Scorer, name)

        def counted(self, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, *args)
        monkeypatch.setattr(Scorer, name, counted)
    probe = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:],
                             SelectionConfig(kl_threshold=1e9, induce_threshold=-100.0, prune=False))
    kl = float(probe.table.kl.median())  # a threshold that discards some candidates and keeps others
    calls.update(induce=0, bypass=0)
    full = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:],
                            SelectionConfig(kl_threshold=kl, induce_threshold=-100.0, prune=False))
    scored = full.table[full.table.reason != "late layer"]
    n_scored, full_calls = len(scored), dict(calls)
    discarded = int(((scored.kl > kl) | scored.kl.isna()).sum())
    assert 0 < discarded < n_scored
    calls.update(induce=0, bypass=0)
    pruned = select_direction(tiny, candidates, PROMPTS[:4], PROMPTS[4:],
                              SelectionConfig(kl_threshold=kl, induce_threshold=-100.0, prune=True))
    assert (pruned.pos, pruned.layer) == (full.pos, full.layer)
    assert full_calls == {"induce": n_scored, "bypass": n_scored}
    assert calls == {"induce": n_scored - discarded, "bypass": n_scored - discarded}
    gone = pruned.table.kl > kl
    assert gone.any() and pruned.table[gone].induce.isna().all() and (pruned.table[gone].reason == f"KL > {kl}").all()
