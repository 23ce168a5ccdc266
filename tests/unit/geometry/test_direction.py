import pytest
import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import Provenance, RefusalDirection


def test_save_load_roundtrip(tmp_path):
    d = RefusalDirection(torch.randn(16), layer=3, pos=-2, model="m", weights_sha="abc",
                         provenance=Provenance(kl=0.01, relaxed=["induce"]), extra={"tool": "other"})
    path = d.save(tmp_path / "direction.safetensors")
    back = RefusalDirection.load(path)
    torch.testing.assert_close(back.vector, d.vector)
    assert (back.layer, back.pos, back.model, back.weights_sha, back.method) == (3, -2, "m", "abc", "dim")
    assert back.provenance == Provenance(kl=0.01, relaxed=["induce"]) and back.extra == {"tool": "other"}
    meta = (tmp_path / "direction.json").read_text()
    assert '"norm"' in meta and '"mode": "raw"' in meta
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_load_errors(tmp_path):
    with pytest.raises(RefusalTLError, match="does not exist"):
        RefusalDirection.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(RefusalTLError, match="is not a readable refusal_tl direction file"):
        RefusalDirection.load(tmp_path / "junk.safetensors")
