"""What determines an RDO run (docs/algorithms.md §4–§5); sizes come from :mod:`refusal_tl.profiles`.

Every option is checked at construction, so a typo fails in one line before a model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar, Literal, no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_literals
from refusal_tl.optim.trainer import TrainConfig

RetainKL = Literal["paper", "code"]
RdoSelectionRule = Literal["lowest_loss", "last20"]
RefusalTargets = Literal["all", "refusing"]


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RdoConfig(TrainConfig):
    """Algorithm 1's hyper-parameters: the optimiser (:class:`~refusal_tl.optim.TrainConfig`),
    the loss weights and retain-KL form, and how a step is batched (``micro_batch``: examples
    per forward; any value gives the same loss, per-example means)."""

    micro_batch: int = 16
    weights: dict = field(default_factory=lambda: dict(profiles.RDO_WEIGHTS))
    retain_kl: RetainKL = "paper"  # or "code": the authors' KL(ablated‖clean) summed over the window

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "micro_batch")
        check_literals(self)
        unknown = set(self.weights) - set(profiles.RDO_WEIGHTS)
        if unknown or any(w < 0 for w in self.weights.values()):
            raise RefusalTLError(f"RDO weights must be non-negative values for {', '.join(profiles.RDO_WEIGHTS)}; "
                                 f"got {self.weights}.")
        object.__setattr__(self, "weights", {**profiles.RDO_WEIGHTS, **self.weights})

    @property
    def loss_weights(self) -> dict[str, float]:
        """The weight of every loss term the step computes (subclasses add terms)."""
        return dict(self.weights)

    @property
    def train(self) -> TrainConfig:
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})

    def key(self) -> dict:
        """What determines the trajectory (a checkpoint resumes only if this matches)."""
        return {k: v for k, v in asdict(self).items() if k != "micro_batch"}


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RunConfig:
    """What every trained stage's run shares (RDO, cones, RepInd): the model, the profile that sized
    it, the training prompts (``n_train`` per class before filtering, None: all; sources for
    :func:`refusal_tl.data.load_source`, None: the bundled splits), which t_refusal targets L_add
    trains on (``refusing``: only those that are refusals), prompts per forward for targets and
    scoring, and a cap on optimizer steps. Subclasses name their profile entry (``STAGE``) and the
    field holding their training config (``NESTED``); ``XConfig()`` equals ``XConfig.from_profile("cpu")``."""

    STAGE: ClassVar[str] = ""
    NESTED: ClassVar[tuple[str, type]] = ("rdo", RdoConfig)

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    n_train: int | None = None
    filter_prompts: bool = True
    refusal_targets: RefusalTargets = "refusing"
    batch_size: int = 16
    harmful_train: str | None = None
    harmless_train: str | None = None
    max_steps: int | None = None

    def __post_init__(self):
        check_literals(self)
        check_at_least_one(self, "batch_size")
        check_at_least_one(self, "n_train", "max_steps", optional=True)

    @classmethod
    def from_profile(cls, profile: str, **overrides):
        """The profile's settings, then ``overrides`` (None values ignored); the ``NESTED`` keyword
        holds the training config's fields (``weights`` merged into the defaults)."""
        name, klass = cls.NESTED
        nested = overrides.pop(name, None)
        kw, inner = profiles.split(profile, cls.STAGE, {f.name for f in fields(klass)}, nested, **overrides)
        return cls(profile=profile, **kw, **{name: klass(**inner)})

    def to_dict(self) -> dict:
        return asdict(self)


def cpu(klass: type, stage: str) -> Callable[[], object]:
    """A default factory: ``klass`` (a training config) with the cpu profile's settings of ``stage``."""
    return lambda: klass(**profiles.split("cpu", stage, {f.name for f in fields(klass)})[1])


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RdoRunConfig(RunConfig):
    """Everything that determines an RDO run (recorded in its metadata)."""

    STAGE: ClassVar[str] = "rdo"
    NESTED: ClassVar[tuple[str, type]] = ("rdo", RdoConfig)

    layer: int | None = None  # l_add; None: the DIM layer
    selection: RdoSelectionRule = "lowest_loss"
    restarts: int = 1  # random initialisations (seeds seed, seed+1, ...); the lowest training loss wins
    rdo: RdoConfig = field(default_factory=cpu(RdoConfig, "rdo"))

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "restarts")
        if self.layer is not None and self.layer < 0:
            raise RefusalTLError(f"layer must be ≥ 0, got {self.layer}.")
