"""Run configurations and the named profiles.

| profile | train / class | val harmful / harmless | late layers scored |
|---------|------|---------|-----|
| ``ci``    | 24  | 16 / 16 | no  |
| ``cpu``   | 128 | 48 / 32 | no  |
| ``paper`` | all | all / all | yes |

Counts are *before* filtering by baseline refusal score (SPEC A), which keeps only the
harmful prompts the model refuses and the harmless ones it answers; harmless *train* is
then truncated to the harmful count. Measured costs are in the README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from refusal_tl.errors import RefusalTLError

PROFILES: dict[str, dict] = {
    "ci": dict(n_train=24, n_val=16, batch_size=8, score_late_layers=False, prune=True),
    "cpu": dict(n_train=128, n_val=48, n_val_harmless=32, batch_size=16, score_late_layers=False, prune=True),
    "paper": dict(n_train=None, n_val=None, batch_size=32, score_late_layers=True, prune=False),
}


@dataclass(frozen=True)
class DimConfig:
    """Everything that determines a DIM run (recorded in its metadata)."""

    model: str = "bundled"
    profile: str = "cpu"
    n_train: int | None = 128
    n_val: int | None = 48
    n_val_harmless: int | None = None  # None: same as n_val
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
        given = {k: v for k, v in overrides.items() if v is not None}
        if "n_val" in given and "n_val_harmless" not in given:
            given["n_val_harmless"] = None  # an explicit --n-val sizes both sets
        fields = {**PROFILES[profile], **given}
        return cls(profile=profile, **fields)

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **kw) -> "DimConfig":
        return replace(self, **kw)
