"""The cone value object: orthant sampling (statistically uniform), membership, files."""

import math

import pytest
import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry.cone import RefusalCone, orthant_weights
from refusal_tl.optim import gram_schmidt

N = 20_000
KS_CRITICAL = 1.95 / math.sqrt(N)  # Kolmogorov–Smirnov at significance 0.001


def ks_uniform(x: torch.Tensor) -> float:
    """Largest gap between the empirical CDF of ``x`` (values in [0, 1]) and the uniform CDF."""
    x = x.double().sort().values
    i = torch.arange(1, len(x) + 1, dtype=torch.float64)
    return float(torch.maximum(i / len(x) - x, x - (i - 1) / len(x)).max())


def test_orthant_weights_are_uniform_on_the_quarter_circle():
    """N = 2: uniform on the orthant means the angle is uniform on [0, π/2]."""
    s = orthant_weights(N, 2, seed=0)
    angle = torch.atan2(s[:, 1], s[:, 0]) / (math.pi / 2)
    assert (s >= 0).all() and torch.allclose(s.norm(dim=-1), torch.ones(N))
    assert ks_uniform(angle) < KS_CRITICAL


def test_orthant_weights_are_uniform_on_the_eighth_sphere():
    """N = 3 (Archimedes): each coordinate of a uniform point on the sphere is uniform on [0, 1]."""
    s = orthant_weights(N, 3, seed=1)
    for j in range(3):
        assert ks_uniform(s[:, j]) < KS_CRITICAL


def test_the_uniformity_test_rejects_convex_combinations():
    """Normalised convex combinations (the sampler the paper warns against) fail the same test."""
    w = torch.distributions.Dirichlet(torch.ones(2)).sample((N,))
    s = w / w.norm(dim=-1, keepdim=True)
    assert ks_uniform(torch.atan2(s[:, 1], s[:, 0]) / (math.pi / 2)) > 2 * KS_CRITICAL


@pytest.fixture
def cone():
    return RefusalCone(gram_schmidt(torch.randn(3, 16)), layer=2, alpha=4.0, model="m", weights_sha="s")


def test_samples_stay_in_the_cone_and_outsiders_do_not(cone):
    r = cone.sample(256, seed=42)
    assert r.shape == (256, 16) and torch.allclose(r.norm(dim=-1), torch.ones(256))
    assert cone.contains(r).all() and cone.contains(cone.basis).all()
    assert torch.equal(r, cone.sample(256, seed=42)) and not torch.equal(r, cone.sample(256, seed=0))
    assert not cone.contains(-cone.basis[0])  # in the span, negative weight
    outside = torch.randn(16)
    assert not cone.contains(outside - (outside @ cone.basis.T) @ cone.basis)  # orthogonal to the span


def test_save_load_roundtrip(cone, tmp_path):
    path = cone.save(tmp_path / "basis.safetensors")
    back = RefusalCone.load(path)
    torch.testing.assert_close(back.basis, cone.basis)
    assert (back.layer, back.alpha, back.model, back.dims) == (2, 4.0, "m", 3)
    assert (tmp_path / "basis.json").is_file()


def test_bad_cones_are_refused(tmp_path):
    with pytest.raises(RefusalTLError, match="orthonormal rows"):
        RefusalCone(torch.randn(2, 8), 0, 1.0, "m", "s")
    from refusal_tl.geometry import RefusalDirection

    RefusalDirection(torch.randn(8), 1, -1, "m", "s").save(tmp_path / "d.safetensors")
    with pytest.raises(RefusalTLError, match="not a refusal_tl cone file"):
        RefusalCone.load(tmp_path / "d.safetensors")
