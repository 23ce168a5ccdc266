"""What determines a cone run (docs/algorithms.md §6); sizes come from :mod:`refusal_tl.profiles`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal, no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_choice
from refusal_tl.rdo.config import RdoConfig

Sampling = Literal["orthant", "interpolation"]
ConeInit = Literal["random", "rdo"]
ConeSelectionRule = Literal["lowest_loss", "last20"]


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class ConeConfig(RdoConfig):
    """Algorithm 2's step: the RDO loss (:class:`~refusal_tl.rdo.RdoConfig`) on ``n_samples``
    fresh cone samples per example plus on every basis vector.

    ``sampling``: ``orthant`` (uniform on the cone, default) or ``interpolation`` (the
    official option: weights exp(N(0, 1)) normalised to sum 1, biased toward the centre).
    """

    n_samples: int = 8
    sampling: Sampling = "orthant"

    def __post_init__(self):
        super().__post_init__()
        check_choice("sampling", self.sampling, ("orthant", "interpolation"))
        if self.n_samples < 0:
            raise RefusalTLError(f"n_samples must be ≥ 0, got {self.n_samples}.")

    @property
    def rdo(self) -> RdoConfig:
        return RdoConfig(**{f.name: getattr(self, f.name) for f in fields(RdoConfig)})


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class ConeRunConfig:
    """Everything that determines a cone run (recorded in its metadata).

    ``dims`` are trained in increasing order; the first starts from ``init`` (``random``:
    the official N(0, I) rows; ``rdo``: the run's RDO direction, then the part of DIM
    orthogonal to it, then random rows, a documented deviation for small budgets) and each
    later one from the previous dimension's lowest-loss basis plus one random row (official,
    no early stop unless ``early_stop``). ``max_steps`` caps each dimension's steps.
    """

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    dims: tuple[int, ...] = (2, 3)
    init: ConeInit = "random"
    early_stop: bool = False  # stop growing once no basis vector has a negative bypass score
    selection: ConeSelectionRule = "lowest_loss"
    filter_samples: int = 64  # fixed samples (seed 42) behind the selection filters
    n_val: int | None = None  # validation prompts per class for the filters (None: all)
    kl_threshold: float = 0.1
    n_train: int | None = None
    filter_prompts: bool = True
    refusal_targets: str = "all"
    batch_size: int = 16
    harmful_train: str | None = None  # prompt sources (data.load_source); None = bundled splits
    harmless_train: str | None = None
    max_steps: int | None = None
    cone: ConeConfig = field(default_factory=ConeConfig)

    def __post_init__(self):
        check_choice("profile", self.profile, profiles.NAMES)
        check_choice("init", self.init, ("random", "rdo"))
        check_choice("selection", self.selection, ("lowest_loss", "last20"))
        check_choice("refusal_targets", self.refusal_targets, ("all", "refusing"))
        object.__setattr__(self, "dims", tuple(sorted(set(int(d) for d in self.dims))))
        if not self.dims or self.dims[0] < 1:
            raise RefusalTLError(f"cone dimensions must be integers ≥ 1, got {self.dims}; e.g. --dims 2,3.")
        check_at_least_one(self, "filter_samples", "batch_size")
        check_at_least_one(self, "n_train", "n_val", "max_steps", optional=True)

    @classmethod
    def from_profile(cls, profile: str, cone: dict | None = None, **overrides) -> "ConeRunConfig":
        """The profile's ``cone`` settings, then ``overrides`` (None values ignored); ``cone``
        holds :class:`ConeConfig` fields."""
        kw, cone_kw = profiles.split(profile, "cone", {f.name for f in fields(ConeConfig)}, cone, **overrides)
        return cls(profile=profile, **kw, cone=ConeConfig(**cone_kw))

    def to_dict(self) -> dict:
        return asdict(self)
