import math

import pytest
import torch

from refusal_tl.rdo.losses import retain_kl, total_loss
from refusal_tl.steer.metrics import IGNORE, target_cross_entropy, target_labels


def test_target_labels_mask_prompt_and_shift():
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    target = torch.tensor([[0, 0, 0, 1, 1]])  # last two tokens are the target
    labels = target_labels(ids, target)
    # position 2 (last template token) predicts 8, position 3 predicts 9, the rest ignored
    assert labels.tolist() == [[IGNORE, IGNORE, 8, 9, IGNORE]]


def test_target_cross_entropy_on_hand_made_logits():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = math.log(3.0)  # p(2) = 3/6 at position 0
    labels = torch.tensor([[2, IGNORE, 1]])  # position 2 is uniform: p(1) = 1/4
    expected = (-math.log(0.5) - math.log(0.25)) / 2
    assert target_cross_entropy(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_target_cross_entropy_is_a_per_example_mean():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 2] = math.log(3.0)
    labels = torch.tensor([[2, IGNORE, 1], [IGNORE, IGNORE, 3]])  # 2 targets in row 0, 1 in row 1
    ce = target_cross_entropy(logits, labels)
    assert ce.shape == (2,)
    assert ce[0].item() == pytest.approx((-math.log(0.5) - math.log(0.25)) / 2, abs=1e-6)
    assert ce[1].item() == pytest.approx(-math.log(0.25), abs=1e-6)


def test_retain_kl_modes():
    clean, abl = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    p, q = clean.softmax(-1), abl.softmax(-1)
    paper = (p * (p.log() - q.log())).sum(-1).mean(-1)
    code = (q * (q.log() - p.log())).sum(-1).sum(-1)
    torch.testing.assert_close(retain_kl(clean, abl), paper, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(retain_kl(clean, abl, "code"), code, rtol=1e-5, atol=1e-6)
    assert retain_kl(clean, clean).abs().max().item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        retain_kl(clean, abl, "other")


def test_total_loss_weights():
    parts = {"abl": torch.tensor(1.0), "add": torch.tensor(2.0), "ret": torch.tensor(3.0)}
    assert total_loss(parts).item() == pytest.approx(1.0 + 0.4 + 3.0)
    assert total_loss(parts, {"ret": 0.0}).item() == pytest.approx(1.4)


def test_retain_kl_mask_ignores_positions_outside_the_window():
    clean, abl = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    mask = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    noisy = abl.clone()
    noisy[0, 0] += 50.0  # outside row 0's window
    noisy[1, :2] -= 50.0  # outside row 1's window
    torch.testing.assert_close(retain_kl(clean, abl, mask=mask), retain_kl(clean, noisy, mask=mask))
    p, q = clean.softmax(-1), abl.softmax(-1)
    per_pos = (p * (p.log() - q.log())).sum(-1)
    expected = torch.stack([per_pos[0, 1:].mean(), per_pos[1, 2:].mean()])
    torch.testing.assert_close(retain_kl(clean, abl, mask=mask), expected, rtol=1e-5, atol=1e-6)
    reverse = (q * (q.log() - p.log())).sum(-1)
    torch.testing.assert_close(retain_kl(clean, abl, "code", mask=mask), (reverse * mask).sum(1))
