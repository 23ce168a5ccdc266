"""What determines a DIM run (recorded in its metadata); sizes come from :mod:`refusal_tl.profiles`.

Counts are *before* filtering by baseline refusal score (docs/algorithms.md §0), which keeps
only the harmful prompts the model refuses and the harmless ones it answers; harmless
*train* is then truncated to the harmful count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_literals
from refusal_tl.model.load import DtypeName, pick_device


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class DimConfig:
    """Everything that determines a DIM run. Prompt sources: ``None`` (the bundled split),
    a file, ``bundled:KIND:SPLIT`` or ``hub:NAME:SPLIT`` (see :func:`refusal_tl.data.load_source`)."""

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    n_train: int | None = 128
    n_val: int | None = 48
    n_val_harmless: int | None = 32  # None: same as n_val
    batch_size: int = 16
    filter_prompts: bool = True
    score_late_layers: bool = False
    prune: bool = True
    positions: tuple[int, ...] | str | None = None  # EOI positions searched (-1 = last); None or "all": all
    harmful_train: str | None = None
    harmless_train: str | None = None
    harmful_val: str | None = None
    harmless_val: str | None = None
    device: str | None = None
    dtype: DtypeName = "auto"  # auto: bf16 where the hardware computes it natively, else float32

    def __post_init__(self):
        check_literals(self)
        check_at_least_one(self, "n_train", "n_val", "n_val_harmless", optional=True)
        check_at_least_one(self, "batch_size")
        object.__setattr__(self, "positions", check_positions(self.positions))
        if self.device is not None:
            pick_device(self.device)

    @classmethod
    def from_profile(cls, profile: str, **overrides) -> "DimConfig":
        given = {k: v for k, v in overrides.items() if v is not None}
        if "n_val" in given and "n_val_harmless" not in given:
            given["n_val_harmless"] = None  # an explicit --n-val sizes both sets
        return cls(profile=profile, **{**profiles.profile(profile, "dim"), **given})

    def to_dict(self) -> dict:
        """JSON-ready fields (``positions`` as a list)."""
        d = asdict(self)
        return d | {"positions": list(self.positions) if self.positions is not None else None}

    def replace(self, **kw) -> "DimConfig":
        return replace(self, **kw)


def check_positions(positions) -> tuple[int, ...] | None:
    """Post-instruction positions counted from the end (-1 = the last prompt token) as a tuple,
    from a sequence or a string such as ``"-2,-1"``; None or ``"all"`` (every position): None."""
    if positions is None or positions == "all":
        return None
    try:
        pos = tuple(int(p) for p in positions.split(",")) if isinstance(positions, str) else tuple(positions)
    except (TypeError, ValueError):
        pos = ()
    if not pos or any(isinstance(p, bool) or not isinstance(p, int) or p >= 0 for p in pos):
        raise RefusalTLError(f"positions must be 'all' or negative token offsets from the prompt's end "
                             f"(-1 = the last post-instruction token), e.g. --positions=-1 or --positions=-2,-1; "
                             f"got {positions!r}.")
    return pos
