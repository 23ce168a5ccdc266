"""What determines a cone run (docs/algorithms.md §6); sizes come from :mod:`refusal_tl.profiles`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal, no_type_check

from refusal_tl.errors import RefusalTLError, check_at_least_one
from refusal_tl.rdo.config import RdoConfig, RunConfig, cpu

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
        if self.n_samples < 0:
            raise RefusalTLError(f"n_samples must be ≥ 0, got {self.n_samples}.")

    @property
    def rdo(self) -> RdoConfig:
        return RdoConfig(**{f.name: getattr(self, f.name) for f in fields(RdoConfig)})


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class ConeRunConfig(RunConfig):
    """Everything that determines a cone run (recorded in its metadata).

    ``dims`` are trained in increasing order; the first starts from ``init`` (``random``:
    the official N(0, I) rows; ``rdo``: the run's RDO direction, then the part of DIM
    orthogonal to it, then random rows, a documented deviation for small budgets) and each
    later one from the previous dimension's lowest-loss basis plus one random row (official,
    no early stop unless ``early_stop``). ``max_steps`` caps each dimension's steps.
    """

    STAGE: ClassVar[str] = "cone"
    NESTED: ClassVar[tuple[str, type]] = ("cone", ConeConfig)

    dims: tuple[int, ...] = (2, 3)
    init: ConeInit = "rdo"
    early_stop: bool = False  # stop growing once no basis vector has a negative bypass score
    selection: ConeSelectionRule = "lowest_loss"
    filter_samples: int = 16  # fixed samples (seed 42) behind the selection filters (official: 64)
    n_val: int | None = 12  # validation prompts per class for the filters (None: all)
    kl_threshold: float = 0.1
    max_steps: int | None = 12  # per dimension
    cone: ConeConfig = field(default_factory=cpu(ConeConfig, "cone"))

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dims", tuple(sorted(set(int(d) for d in self.dims))))
        if not self.dims or self.dims[0] < 1:
            raise RefusalTLError(f"cone dimensions must be integers ≥ 1, got {self.dims}; e.g. --dims 2,3.")
        check_at_least_one(self, "filter_samples")
        check_at_least_one(self, "n_val", optional=True)
