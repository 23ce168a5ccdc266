"""What determines a GCG run (docs/algorithms.md §9); sizes come from :mod:`refusal_tl.profiles`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import no_type_check

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_literals


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class GcgConfig:
    """One attack per prompt: 20 × "!", one position replaced per candidate, seed 42, w_aux = 10 at
    15/26 of the depth, target = the first 20 characters of the DIM-ablated completion (the paper's);
    the defaults are the cpu profile's budget (the paper profile: 250 steps of width 512, top-k 256)."""

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    steps: int = 20
    search_width: int = 32
    topk: int = 128
    n_replace: int = 1
    suffix_init: str = "!"  # repeated suffix_len times, space-separated ("! ! … !")
    suffix_len: int = 20
    aux_weight: float = 10.0
    aux_layer: int | None = None  # None: round(15/26 · L), the paper's layer 15 of Gemma-2-2B's 26
    target_chars: int = 20
    seed: int = 42
    eval_batch: int = 32  # candidates per forward
    n_prompts: int | None = 3
    max_new_tokens: int = 32

    def __post_init__(self):
        check_literals(self)
        check_at_least_one(self, "steps", "search_width", "topk", "n_replace", "suffix_len", "target_chars",
                           "eval_batch", "max_new_tokens")
        check_at_least_one(self, "n_prompts", optional=True)
        if self.aux_weight < 0:
            raise RefusalTLError(f"aux_weight must be ≥ 0 (0: plain GCG), got {self.aux_weight}.")
        if self.n_replace > self.suffix_len:
            raise RefusalTLError(f"n_replace ({self.n_replace}) cannot exceed suffix_len ({self.suffix_len}).")

    def layer(self, n_layers: int) -> int:
        return round(15 / 26 * n_layers) if self.aux_layer is None else self.aux_layer

    @classmethod
    def from_profile(cls, profile: str, **overrides) -> "GcgConfig":
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(profile=profile, **{**profiles.profile(profile, "gcg"), **given})

    def key(self) -> dict:
        """What determines one attack's trajectory (a checkpoint resumes only if this matches)."""
        return {k: v for k, v in asdict(self).items() if k not in ("eval_batch", "n_prompts", "max_new_tokens",
                                                                   "profile", "steps")}

    def to_dict(self) -> dict:
        return asdict(self)
