"""What determines an RDO run (docs/algorithms.md §4–§5); sizes come from :mod:`refusal_tl.profiles`.

Every option is checked at construction, so a typo fails in one line before a model loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal, no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_choice
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
        check_choice("retain_kl", self.retain_kl, ("paper", "code"))
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
class RdoRunConfig:
    """Everything that determines an RDO run (recorded in its metadata)."""

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    n_train: int | None = None  # harmful and harmless train prompts before filtering (None: all)
    filter_prompts: bool = True
    layer: int | None = None  # l_add; None: the DIM layer
    selection: RdoSelectionRule = "lowest_loss"
    refusal_targets: RefusalTargets = "all"  # "refusing": L_add only on t_refusal that are refusals
    restarts: int = 1  # random initialisations (seeds seed, seed+1, ...); the lowest training loss wins
    batch_size: int = 16  # prompts per forward for targets and scoring
    harmful_train: str | None = None  # prompt sources (data.load_source); None = bundled splits
    harmless_train: str | None = None
    max_steps: int | None = None
    rdo: RdoConfig = field(default_factory=RdoConfig)

    def __post_init__(self):
        check_choice("profile", self.profile, profiles.NAMES)
        check_choice("selection", self.selection, ("lowest_loss", "last20"))
        check_choice("refusal_targets", self.refusal_targets, ("all", "refusing"))
        check_at_least_one(self, "restarts", "batch_size")
        check_at_least_one(self, "n_train", "max_steps", optional=True)
        if self.layer is not None and self.layer < 0:
            raise RefusalTLError(f"layer must be ≥ 0, got {self.layer}.")

    @classmethod
    def from_profile(cls, profile: str, rdo: dict | None = None, **overrides) -> "RdoRunConfig":
        """The profile's settings, then ``overrides`` (None values ignored); ``rdo`` holds
        :class:`RdoConfig` fields, ``weights`` merged into the defaults."""
        kw, rdo_kw = profiles.split(profile, "rdo", {f.name for f in fields(RdoConfig)}, rdo, **overrides)
        return cls(profile=profile, **kw, rdo=RdoConfig(**rdo_kw))

    def to_dict(self) -> dict:
        return asdict(self)


