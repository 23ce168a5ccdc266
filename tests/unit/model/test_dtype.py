"""``dtype="auto"``: bf16 where the hardware computes it natively, float32 elsewhere; the choice is
logged once, and the model's dtype is part of its cache key and of what it writes."""

import logging

import pytest
import torch

from helpers import make_tiny
from refusal_tl.errors import RefusalTLError
from refusal_tl.model import load
from refusal_tl.model.load import auto_dtype, cpu_has_fast_bf16, pick_dtype

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("onednn, avx512_bf16, amx, fast", [
    (True, True, False, True),  # AVX512-BF16 (this project's machines)
    (True, False, True, True),  # AMX
    (True, False, False, False),  # AVX-512 without BF16: oneDNN emulates bf16
    (False, True, True, False),  # no oneDNN bf16 at all
])
def test_cpu_bf16_detection(monkeypatch, onednn, avx512_bf16, amx, fast):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert cpu_has_fast_bf16() is fast
    assert auto_dtype(CPU)[0] == (torch.bfloat16 if fast else torch.float32)


@pytest.mark.parametrize("bf16", [True, False])
def test_auto_on_cuda_follows_the_device(monkeypatch, bf16):
    monkeypatch.setattr(load, "cuda_has_bf16", lambda device: bf16)
    assert auto_dtype(CUDA)[0] == (torch.bfloat16 if bf16 else torch.float32)


@pytest.mark.parametrize("fast", [True, False])
def test_auto_is_logged_once_and_explicit_dtypes_win(monkeypatch, caplog, fast):
    monkeypatch.setattr(load, "cpu_has_fast_bf16", lambda: fast)
    load._log_choice.cache_clear()
    with caplog.at_level(logging.WARNING, logger="refusal_tl.model.load"):
        chosen = [pick_dtype("auto", CPU) for _ in range(3)] + [pick_dtype(None, CPU)]
    assert set(chosen) == {torch.bfloat16 if fast else torch.float32}
    assert len([r for r in caplog.records if "dtype auto" in r.message]) == 1
    assert pick_dtype("float32", CPU) == torch.float32 and pick_dtype("bfloat16", CPU) == torch.bfloat16
    with pytest.raises(RefusalTLError, match="unknown dtype 'fp8'"):
        pick_dtype("fp8", CPU)


def test_the_dtype_is_in_the_model_key():
    m32, m16 = make_tiny(), make_tiny(dtype=torch.bfloat16)
    assert m32.key == {"model": "tiny-qwen", "weights_sha": "tiny", "dtype": "float32"}
    assert m16.key == {**m32.key, "dtype": "bfloat16"}


def test_a_dtype_change_recomputes_and_is_recorded(tmp_path):
    """Caches keyed by the model recompute for another dtype (baseline scores, RDO targets) and
    reuse for the same one; a direction records the dtype that made it."""
    from helpers import PROMPTS
    from refusal_tl.dim.run import baseline_scores
    from refusal_tl.geometry import RefusalDirection
    from refusal_tl.rdo.targets import make_targets

    m32, m16 = make_tiny(), make_tiny(dtype=torch.bfloat16)
    s32, s16 = (baseline_scores(m, PROMPTS, 4, cache_dir=tmp_path) for m in (m32, m16))
    assert len(list(tmp_path.glob("baseline-scores-*.json"))) == 2 and not torch.equal(s32, s16)
    torch.testing.assert_close(baseline_scores(m16, PROMPTS, 4, cache_dir=tmp_path), s16)
    dim = RefusalDirection(3 * torch.randn(32), layer=2, pos=-1, model="tiny-qwen", weights_sha="tiny",
                           dtype=m16.dtype_name)
    for m in (m32, m16, m16):
        make_targets(m, dim, PROMPTS[:2], PROMPTS[2:4], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("targets-*.json"))) == 2
    dim.save(tmp_path / "d.safetensors")
    assert RefusalDirection.load(tmp_path / "d.safetensors").dtype == "bfloat16"
