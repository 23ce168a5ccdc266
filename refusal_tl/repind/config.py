"""What determines a RepInd run (docs/algorithms.md §8); sizes come from :mod:`refusal_tl.profiles`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, no_type_check

from refusal_tl.errors import RefusalTLError, check_at_least_one
from refusal_tl.rdo.config import RdoConfig, RunConfig, cpu

IndTokens = Literal["last", "all"]  # L_ind at the last prompt token (§6, code) or over the prompt's tokens (App. A)


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class RepIndConfig(RdoConfig):
    """The RDO loss (:class:`~refusal_tl.rdo.RdoConfig`) plus λ_ind·L_ind over the layers
    0 … ⌊``layer_fraction``·L⌋−1 (official: λ_ind = 200, 0.9, λ_ret = 0.1, 2 epochs).

    ``tokens``: ``"last"`` compares the cosines at the last prompt token (paper §6, the official
    code); ``"all"`` averages L_ind over the prompt's tokens after the system prompt (paper App. A).
    """

    ind_weight: float = 200.0
    layer_fraction: float = 0.9
    tokens: IndTokens = "last"

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
class RepIndRunConfig(RunConfig):
    """Everything that determines an iterative RepInd run (recorded in its metadata).

    ``k`` directions are found one after another; each from ``candidates`` random starts
    (seeds derived from ``repind.seed``), the candidate whose lowest-loss vector has the lowest
    mean refusal score under ablation on ``n_val`` filtered harmful validation prompts wins.
    """

    STAGE: ClassVar[str] = "repind"
    NESTED: ClassVar[tuple[str, type]] = ("repind", RepIndConfig)

    k: int = 2
    candidates: int = 1
    n_val: int | None = 24
    repind: RepIndConfig = field(default_factory=cpu(RepIndConfig, "repind"))

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "k", "candidates")
        check_at_least_one(self, "n_val", optional=True)
