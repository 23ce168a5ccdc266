"""What determines a RepInd run (docs/algorithms.md §8); sizes come from :mod:`refusal_tl.profiles`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_choice
from refusal_tl.rdo.config import RdoConfig


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RepIndConfig(RdoConfig):
    """The RDO loss (:class:`~refusal_tl.rdo.RdoConfig`) plus λ_ind·L_ind over the layers
    0 … ⌊``layer_fraction``·L⌋−1 (official: λ_ind = 200, 0.9, λ_ret = 0.1, 2 epochs)."""

    ind_weight: float = 200.0
    layer_fraction: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        if self.ind_weight < 0:
            raise RefusalTLError(f"ind_weight (λ_ind) must be ≥ 0, got {self.ind_weight}.")
        if not 0 < self.layer_fraction <= 1:
            raise RefusalTLError(f"layer_fraction must be in (0, 1], got {self.layer_fraction}.")

    @property
    def loss_weights(self) -> dict[str, float]:
        return {**self.weights, "ind": self.ind_weight}

    def ind_layers(self, n_layers: int) -> list[int]:
        return list(range(max(1, int(n_layers * self.layer_fraction))))


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RepIndRunConfig:
    """Everything that determines an iterative RepInd run (recorded in its metadata).

    ``k`` directions are found one after another; each from ``candidates`` random starts
    (seeds derived from ``repind.seed``), the candidate whose lowest-loss vector has the lowest
    mean refusal score under ablation on ``n_val`` filtered harmful validation prompts wins.
    """

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    k: int = 2
    candidates: int = 1
    n_train: int | None = None
    filter_prompts: bool = True
    refusal_targets: str = "all"
    n_val: int | None = None
    batch_size: int = 16
    harmful_train: str | None = None
    harmless_train: str | None = None
    max_steps: int | None = None
    repind: RepIndConfig = field(default_factory=RepIndConfig)

    def __post_init__(self):
        check_choice("profile", self.profile, profiles.NAMES)
        check_choice("refusal_targets", self.refusal_targets, ("all", "refusing"))
        check_at_least_one(self, "k", "candidates", "batch_size")
        check_at_least_one(self, "n_train", "n_val", "max_steps", optional=True)

    @classmethod
    def from_profile(cls, profile: str, repind: dict | None = None, **overrides) -> "RepIndRunConfig":
        """The profile's ``repind`` settings, then ``overrides`` (None values ignored); ``repind``
        holds :class:`RepIndConfig` fields (``weights`` are merged into the RDO defaults)."""
        kw, rep_kw = profiles.split(profile, "repind", {f.name for f in fields(RepIndConfig)}, repind, **overrides)
        return cls(profile=profile, **kw, repind=RepIndConfig(**rep_kw))

    def to_dict(self) -> dict:
        return asdict(self)
