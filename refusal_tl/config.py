"""Run configurations and the named profiles.

| profile | train prompts / class | val prompts / class | late layers scored | cost on a 2-core CPU (bundled model) |
|---------|------|------|----|----|
| ``ci``    | 24  | 16  | no  | ~2 min  |
| ``cpu``   | 128 | 48  | no  | ~10 min |
| ``paper`` | all | all | yes | GPU recommended |

Counts are *before* filtering by baseline refusal score (SPEC A), which keeps only the
harmful prompts the model refuses and truncates harmless to the same count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from refusal_tl.errors import RefusalTLError

PROFILES: dict[str, dict] = {
    "ci": dict(n_train=24, n_val=16, batch_size=8, score_late_layers=False, prune=True),
    "cpu": dict(n_train=128, n_val=48, batch_size=16, score_late_layers=False, prune=True),
    "paper": dict(n_train=None, n_val=None, batch_size=32, score_late_layers=True, prune=False),
}


@dataclass(frozen=True)
class DimConfig:
    """Everything that determines a DIM run (recorded in its metadata)."""

    model: str = "bundled"
    profile: str = "cpu"
    n_train: int | None = 128
    n_val: int | None = 48
    batch_size: int = 16
    filter_prompts: bool = True
    score_late_layers: bool = False
    prune: bool = True
    harmful_train: str | None = None  # local files; None = bundled splits
    harmless_train: str | None = None
    harmful_val: str | None = None
    harmless_val: str | None = None
    device: str | None = None
    dtype: str | None = None

    @classmethod
    def from_profile(cls, profile: str, **overrides) -> "DimConfig":
        if profile not in PROFILES:
            raise RefusalTLError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
        fields = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(profile=profile, **fields)

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **kw) -> "DimConfig":
        return replace(self, **kw)
