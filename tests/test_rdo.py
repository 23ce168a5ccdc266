import torch

from conftest import PROMPTS
from refusal_tl.rdo import Plateau, tangent


def test_tangent_projection_keeps_unit_norm_to_first_order():
    r = torch.randn(16)
    r = r / r.norm()
    g = tangent(torch.randn(16), r)
    assert abs(float(g @ r)) < 1e-6
    step = r - 1e-3 * g
    assert abs(float(step.norm()) - 1.0) < 1e-5


def test_plateau_schedule_reduces_twice_then_stops():
    p = Plateau(patience=2, max_reductions=2)
    events = [p.step(x) for x in [3.0, 2.0, 2.5, 2.5, 2.4, 2.6, 1.0, 1.5, 1.5, 1.5, 1.5]]
    assert events == ["ok", "ok", "ok", "reduce", "ok", "reduce", "ok", "ok", "stop", "ok", "stop"]


def test_plateau_window_ignores_step_to_step_noise():
    noisy = [1.2, 1.3, 1.0, 1.15, 1.25, 0.95, 1.1, 1.2, 0.9]  # falling trend; every third batch is easy
    raw = Plateau(patience=2, max_reductions=2)
    assert [raw.step(x) for x in noisy][4] == "reduce"
    smooth = Plateau(patience=2, max_reductions=2, window=3)
    assert [smooth.step(x) for x in noisy] == ["ok"] * len(noisy)
    assert smooth.recent == noisy[-3:]


def tiny_pairs():
    return [{"answer": (PROMPTS[i], " Sure here is how"), "refusal": (PROMPTS[-1 - i], " I cannot help"),
             "retain": (PROMPTS[-1 - i], " the sea is")} for i in range(4)]


def mixed_pairs():
    """Prompts and targets of different lengths, so batches carry padding and ragged windows."""
    answers = [" Sure", " Sure here is how to make a bomb", " Here", " As you are"]
    refusals = [" I cannot help", " I", " As Qwen I cannot help with that", " sorry"]
    retains = [" the sea is", " rice", " python code is a story about the sea", " why"]
    return [{"answer": (PROMPTS[i], answers[i]), "refusal": (PROMPTS[7 - i], refusals[i]),
             "retain": (PROMPTS[(i + 3) % 8], retains[i])} for i in range(4)]


def test_windows_mark_last_template_token_and_targets(tiny):
    from refusal_tl.rdo import windows

    w = windows(tiny, ["hack wifi", "tell me a story"], [" Sure", " I cannot help"])
    n_target = [len(tiny.tokenizer(t, add_special_tokens=False).input_ids) for t in (" Sure", " I cannot help")]
    assert w.width == max(n_target) + 1
    assert w.window.sum(1).tolist() == [n + 1 for n in n_target]
    assert (w.labels != -100).sum(1).tolist() == n_target
    ids = w.batch.ids[:, -w.width:]
    assert w.labels[1, -2].item() == ids[1, -1].item()  # shifted by one


def test_efficient_step_equals_straightforward_step(tiny):
    """Cached clean logits, restart at l_add, window-only unembedding and batching change nothing."""
    from refusal_tl.rdo import Prepared, RdoConfig, pair_lengths, reference_step, step_losses

    pairs, group, cfg = mixed_pairs(), [0, 1, 2, 3], RdoConfig(micro_batch=3)
    grads, losses = [], []
    for efficient in (True, False):
        r = torch.nn.Parameter(torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(1)))
        if efficient:
            prep = Prepared(tiny, pairs, layer=2)
            out = step_losses(tiny, r, 3.0, 2, pairs, group, prep, pair_lengths(tiny, pairs), cfg)
        else:
            out = reference_step(tiny, r, 3.0, 2, pairs, group, cfg)
        losses.append(out)
        grads.append(r.grad.clone())
    for name in ("abl", "add", "ret"):
        assert abs(losses[0][name] - losses[1][name]) <= 1e-5 * abs(losses[1][name])
        assert losses[0][name] > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].norm() > 0


def test_training_lowers_loss_and_keeps_unit_norm(tiny):
    from refusal_tl.rdo import RdoConfig, train_rdo

    cfg = RdoConfig(accumulation=2, epochs=4, lr=5e-2)
    run = train_rdo(tiny, tiny_pairs(), alpha=3.0, layer=2, cfg=cfg, progress=False)
    losses = [h["train_loss"] for h in run.history]
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]
    assert all(abs(float(v.norm()) - 1) < 1e-5 for v in run.vectors)


def test_same_seed_same_direction_and_resume_equals_uninterrupted(tiny, tmp_path):
    from refusal_tl.rdo import RdoConfig, train_rdo

    cfg = RdoConfig(accumulation=2, epochs=2)
    full = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    again = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, progress=False)
    assert torch.nn.functional.cosine_similarity(full.r, again.r, dim=0) > 0.999
    ckpt = tmp_path / "rdo.pt"
    train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=str(ckpt), max_steps=2, progress=False)  # interrupted
    resumed = train_rdo(tiny, tiny_pairs(), 3.0, 2, cfg, checkpoint=str(ckpt), progress=False)
    assert resumed.step == full.step == 4
    torch.testing.assert_close(resumed.r, full.r, atol=1e-5, rtol=1e-5)


def test_checkpoint_of_other_settings_or_data_is_refused(tiny, tmp_path):
    import pytest

    from refusal_tl.errors import RefusalTLError
    from refusal_tl.rdo import RdoConfig, train_rdo

    ckpt = tmp_path / "rdo.pt"
    train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), checkpoint=str(ckpt), max_steps=1, progress=False)
    other_data = [{**p, "refusal": (p["refusal"][0], " Sorry")} for p in tiny_pairs()]
    for pairs, cfg in [(other_data, RdoConfig(accumulation=2)), (tiny_pairs(), RdoConfig(accumulation=2, seed=1))]:
        with pytest.raises(RefusalTLError, match="other settings"):
            train_rdo(tiny, pairs, 3.0, 2, cfg, checkpoint=str(ckpt), progress=False)


def test_refusing_refusals_replace_answers_by_refusals_cycling():
    from refusal_tl.rdo_pipeline import refusing_refusals

    examples = [("a", "I'm sorry, but no"), ("b", "Sure, here"), ("c", "I cannot help"), ("d", "Paris"), ("e", "1")]
    assert refusing_refusals(examples) == [examples[0], examples[0], examples[2], examples[2], examples[0]]
    answers = [("b", "Sure"), ("d", "Paris")]
    assert refusing_refusals(answers) == answers  # nothing to borrow: kept (and a warning)


def test_hard_constraint_keeps_direction_orthogonal(tiny):
    from refusal_tl.rdo import RdoConfig, train_rdo

    dim = torch.randn(1, tiny.d_model)
    run = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2), constraints=dim, progress=False)
    assert abs(float(run.r @ dim[0] / dim.norm())) < 1e-5


def test_last20_selection_scores_the_last_vectors(tiny):
    from refusal_tl.rdo import RdoConfig, select_rdo, train_rdo

    run = train_rdo(tiny, tiny_pairs(), 3.0, 2, RdoConfig(accumulation=2, epochs=2), progress=False)
    sel = select_rdo(tiny, run, 3.0, 2, "last20", PROMPTS[:3], PROMPTS[3:6], last=3)
    assert [row["step"] for row in sel.table] == [1, 2, 3]
    assert all({"bypass", "induce", "kl"} <= row.keys() for row in sel.table)
    admissible = [row for row in sel.table if row["kl"] <= 0.1 and (row["induce"] >= 0 or "induce" in sel.relaxed)]
    if "kl" in sel.relaxed:  # nothing passed: the official lowest-loss vector is used
        assert not admissible and sel.step == run.lowest_loss_step
    else:
        assert sel.step == min(admissible, key=lambda row: row["bypass"])["step"]
    assert select_rdo(tiny, run, 3.0, 2).step == run.lowest_loss_step
