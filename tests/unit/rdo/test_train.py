"""RDO training on the shared sphere trainer (tiny Qwen)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import PROMPTS, mixed_pairs, tiny_pairs
from refusal_tl.rdo import RdoConfig, select_rdo, train_rdo
from refusal_tl.steer.windows import Example

GOLDEN = json.loads((Path(__file__).parent / "golden_rdo_tiny.json").read_text())


@pytest.mark.parametrize("name,cfg,constrained", [
    ("plain", RdoConfig(accumulation=2, epochs=3, lr=5e-2, retain_kl="code"), False),
    ("constrained", RdoConfig(accumulation=2, epochs=2, lr=5e-2, micro_batch=1), True),
])
def test_same_losses_per_step_as_the_code_before_the_shared_trainer(tiny, name, cfg, constrained):
    """Golden values written by the pre-refactor ``train_rdo`` (commit f61d55b) on the same model."""
    cons = torch.randn(1, tiny.d_model, generator=torch.Generator().manual_seed(5)) if constrained else None
    run = train_rdo(tiny, mixed_pairs(), 3.0, 2, cfg, constraints=cons, progress=False)
    golden = GOLDEN[name]
    assert run.step == len(golden["history"])
    for new, old in zip(run.history, golden["history"]):
        for term in ("abl", "add", "ret", "train_loss", "lr"):
            assert new[term] == pytest.approx(old[term], rel=1e-5, abs=1e-7), (name, new["step"], term)
    cos = torch.nn.functional.cosine_similarity(run.rows[0], torch.tensor(golden["r"]), dim=0)
    assert cos > 0.99999


def test_training_lowers_loss_and_keeps_unit_norm(tiny):
    run = train_rdo(tiny, tiny_pairs(), alpha=3.0, layer=2, cfg=RdoConfig(accumulation=2, epochs=4, lr=5e-2),
                    progress=False)
    losses = [h["train_loss"] for h in run.history]
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]
    assert all(abs(float(v.norm()) - 1) < 1e-5 for v in run.vectors)


def test_same_seed_same_direction_and_resume_equals_uninterrupted(tiny, tmp_path):
    cfg = RdoConfig(accumulation=2, epochs=2)
    full = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    again = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    torch.testing.assert_close(again.rows, full.rows, atol=0, rtol=0)
    ckpt = tmp_path / "checkpoint.safetensors"
    train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=ckpt, max_steps=2, progress=False)  # interrupted
    resumed = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=ckpt, progress=False)
    assert resumed.step == full.step == 4
    torch.testing.assert_close(resumed.rows, full.rows, atol=1e-6, rtol=1e-6)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history])


def test_other_settings_or_data_train_afresh_beside_the_kept_checkpoint(tiny, tmp_path):
    ckpt = tmp_path / "checkpoint.safetensors"
    first = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), checkpoint=ckpt, max_steps=1,
                      progress=False)
    other_data = [replace(p, refusal=Example(p.refusal.prompt, " Sorry")) for p in tiny_pairs()]
    for n, (pairs, cfg) in enumerate([(other_data, RdoConfig(accumulation=2)),
                                      (tiny_pairs(), RdoConfig(accumulation=2, seed=1))], start=1):
        run = train_rdo(tiny, pairs, 3.0, 2, cfg, checkpoint=ckpt, progress=False)
        torch.testing.assert_close(run.rows, train_rdo(tiny, pairs, 3.0, 2, cfg, progress=False).rows)
        assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == n  # each earlier run kept aside
    back = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), checkpoint=ckpt, progress=False)
    assert back.history[0] == first.history[0]  # resumed from the kept checkpoint, not recomputed


def test_hard_constraint_keeps_direction_orthogonal(tiny):
    dim = torch.randn(1, tiny.d_model)
    run = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), constraints=dim, progress=False)
    assert abs(float(run.rows[0] @ dim[0] / dim.norm())) < 1e-5


def test_last20_selection_scores_the_last_vectors(tiny):
    run = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2, epochs=2), progress=False)
    sel = select_rdo(tiny, run, 3.0, 2, "last20", PROMPTS[:3], PROMPTS[3:6], last=3)
    assert [row["step"] for row in sel.table] == [1, 2, 3]
    admissible = [row for row in sel.table if row["kl"] <= 0.1 and (row["induce"] >= 0 or "induce" in sel.relaxed)]
    if "kl" in sel.relaxed:  # nothing passed: the official lowest-loss vector is used
        assert not admissible and sel.step == run.lowest_loss_step
    else:
        assert sel.step == min(admissible, key=lambda row: row["bypass"])["step"]
    assert select_rdo(tiny, run, 3.0, 2).step == run.lowest_loss_step


def test_refusing_refusals_replace_answers_by_refusals_cycling():
    from refusal_tl.rdo.run import refusing_refusals

    examples = [("a", "I'm sorry, but no"), ("b", "Sure, here"), ("c", "I cannot help"), ("d", "Paris"), ("e", "1")]
    assert refusing_refusals(examples) == [examples[0], examples[0], examples[2], examples[2], examples[0]]
    answers = [("b", "Sure"), ("d", "Paris")]
    assert refusing_refusals(answers) == answers  # nothing to borrow: kept (and a warning)
