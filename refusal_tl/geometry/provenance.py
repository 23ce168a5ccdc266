"""How a direction or a cone was found, as typed fields (saved flat in its JSON metadata).

A method fills the fields it has: DIM its selection scores and filters; RDO, cones and RepInd the
training step and loss they were taken from and how they were selected; RDO⊥ the directions it was
held orthogonal to; RepInd its place in the iteration and its cosines to the earlier directions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class Provenance:
    profile: str | None = None
    relaxed: list[str] = field(default_factory=list)  # selection filters dropped because nothing passed them
    # DIM (Arditi's selection, docs/algorithms.md §3)
    bypass: float | None = None
    induce: float | None = None
    kl: float | None = None
    filtered: bool | None = None
    # trained directions and cones (§4–§6)
    step: int | None = None
    train_loss: float | None = None
    selection: str | None = None
    seed: int | None = None
    alpha: float | None = None
    dim_layer: int | None = None
    orthogonal_to: list[dict] = field(default_factory=list)  # RDO⊥: the metadata of the constraints
    n_samples: int | None = None  # cones: fresh samples per example and step
    init: str | None = None  # cones: how the first dimension started
    # RepInd (§8)
    k: int | None = None
    candidate: int | None = None
    val_refusal_score: float | None = None
    independent_of: int | None = None
    cosines_to_V: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The fields that are set (what goes into the metadata)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}

    @classmethod
    def split(cls, meta: dict) -> tuple["Provenance", dict]:
        """``meta``'s provenance fields, and the rest."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in names}), {k: v for k, v in meta.items() if k not in names}
