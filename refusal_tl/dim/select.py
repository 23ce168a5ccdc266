"""Arditi et al.'s direction selection over the DIM candidate grid (docs/algorithms.md §3).

For every candidate v[i, l], on the filtered validation sets:

- **bypass**: mean refusal score on harmful val with v ablated at every layer (lower is better);
- **induce**: mean refusal score on harmless val with +v added at ``resid_pre`` of layer l;
- **KL**: mean KL(p_base ‖ p_ablated) on harmless val at the last position.

A candidate is discarded if a score is NaN, its layer is in the last 20%
(``layer >= int(L·0.8)``), KL > 0.1, or induce < 0. The survivor with the lowest bypass
score wins. The thresholds are arguments so ablation studies can move them.

Cost: three batched forwards per candidate. ``score_late_layers=False`` skips candidates
that the layer cutoff discards anyway; ``prune=True`` scores KL first and skips the induce
and bypass forwards of a candidate it already discards (their table cells stay NaN). Neither
changes which candidate wins. ``positions`` restricts the search to some post-instruction
positions (Arditi searches all of them; the ``ci`` profile only the last, a fifth of the cost).

**Fallback (not in Arditi's code):** if no candidate reaches induce ≥ 0, which happens
on small models such as the bundled 0.5B Qwen, where adding +v raises the refusal score
a lot but not past zero, the induce filter is dropped (KL and layer filters stay), a
warning is logged and ``Selection.relaxed`` records it. The authors' cone selection
relaxes the same threshold in the same situation (docs/algorithms.md §3).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import no_type_check

import pandas as pd
from tqdm.auto import tqdm

from refusal_tl.dim.extract import DimCandidates
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.scorer import Scorer
from refusal_tl.io import write_text
from refusal_tl.model import RefusalModel

log = logging.getLogger(__name__)


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class SelectionConfig:
    """Arditi's thresholds (defaults) and what to skip for speed; checked at construction."""

    prune_layer_frac: float = 0.2
    kl_threshold: float = 0.1
    induce_threshold: float = 0.0
    score_late_layers: bool = False
    prune: bool = True
    batch_size: int = 16
    positions: tuple[int, ...] | None = None  # None: every post-instruction position of the grid

    def __post_init__(self):
        if not 0 <= self.prune_layer_frac < 1:
            raise RefusalTLError(f"prune_layer_frac must be in [0, 1), got {self.prune_layer_frac}.")
        if self.batch_size < 1:
            raise RefusalTLError(f"batch_size must be ≥ 1, got {self.batch_size}.")


@dataclass
class Selection:
    """The scored grid (one row per candidate) and the chosen (pos, layer)."""

    table: pd.DataFrame
    pos: int
    layer: int
    baseline_bypass: float
    baseline_induce: float
    relaxed: tuple[str, ...] = ()

    @property
    def best(self) -> pd.Series:
        return self.table[(self.table.pos == self.pos) & (self.table.layer == self.layer)].iloc[0]


def discard_reason(layer: int, n_layers: int, bypass: float, induce: float, kl: float,
                   cfg: SelectionConfig) -> str:
    """Why a candidate is filtered out ('' if it is admissible)."""
    if layer >= int(n_layers * (1 - cfg.prune_layer_frac)):
        return "late layer"
    if math.isnan(kl):
        return "nan"
    if kl > cfg.kl_threshold:
        return f"KL > {cfg.kl_threshold}"
    if math.isnan(induce):
        return "nan"
    if induce < cfg.induce_threshold:
        return f"induce < {cfg.induce_threshold}"
    if math.isnan(bypass):
        return "nan"
    return ""


def select_direction(
    model: RefusalModel, candidates: DimCandidates, harmful_val: list[str], harmless_val: list[str],
    cfg: SelectionConfig = SelectionConfig(), checkpoint: str | Path | None = None,
) -> Selection:
    """Score every candidate and pick the lowest-bypass admissible one.

    With ``checkpoint`` (a JSONL file), each scored candidate is appended as it finishes
    and a rerun skips the candidates already there: an interrupted selection resumes.
    """
    L = model.n_layers
    scorer = Scorer(model, harmful_val, harmless_val, cfg.batch_size)
    base_harm, base_safe = scorer.baseline()

    cutoff = int(L * (1 - cfg.prune_layer_frac))
    layers = range(L) if cfg.score_late_layers else range(cutoff)
    positions = _searched_positions(candidates, cfg.positions)
    grid = [(p, l) for p in positions for l in layers]
    done = _read_checkpoint(checkpoint)
    rows = [done[key] for key in grid if key in done]
    for pos, layer in tqdm([k for k in grid if k not in done], desc="selecting direction"):
        v = candidates.get(pos, layer).to(model.device)
        kl = scorer.kl(v)
        skip = cfg.prune and (math.isnan(kl) or kl > cfg.kl_threshold)
        induce = float("nan") if skip else scorer.induce(v, layer)
        bypass = float("nan") if skip else scorer.bypass(v)
        reason = discard_reason(layer, L, bypass, induce, kl, cfg)
        rows.append(dict(pos=pos, layer=layer, bypass=bypass, induce=induce, kl=kl,
                         norm=float(v.norm()), filtered=bool(reason), reason=reason))
        if checkpoint is not None:
            with open(checkpoint, "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    for pos in candidates.positions:  # late layers and positions that were never scored
        searched = pos in positions
        first = (L if cfg.score_late_layers else cutoff) if searched else 0
        for layer in range(first, L):
            rows.append(dict(pos=pos, layer=layer, bypass=math.nan, induce=math.nan, kl=math.nan,
                             norm=float(candidates.get(pos, layer).norm()), filtered=True,
                             reason="late layer" if searched else "position not searched"))
    table = pd.DataFrame(rows).sort_values(["pos", "layer"]).reset_index(drop=True)
    ok, relaxed = table[~table.filtered], ()
    if ok.empty:
        induce_only = table.reason.str.startswith("induce")
        ok, relaxed = table[induce_only & table.bypass.notna()], ("induce",)
        if not ok.empty:
            log.warning("No candidate reached induce >= %s; selecting without the induce filter "
                        "(best induce score: %.2f).", cfg.induce_threshold, ok.induce.max())
    if ok.empty:
        raise RefusalTLError(
            "no DIM candidate passed the filters (KL ≤ 0.1, induce ≥ 0, not in the last 20% of "
            "layers); use more validation prompts (--profile cpu/paper) or inspect the selection table."
        )
    table["admissible"] = table.index.isin(ok.index)
    best = ok.loc[ok.bypass.idxmin()]
    return Selection(table, int(best.pos), int(best.layer), base_harm, base_safe, relaxed)


def _searched_positions(candidates: DimCandidates, wanted: tuple[int, ...] | None) -> list[int]:
    """The grid's positions to score: all, or those asked for (each must be in the grid)."""
    if wanted is None:
        return list(candidates.positions)
    missing = [p for p in wanted if p not in candidates.positions]
    if missing:
        raise RefusalTLError(f"position(s) {missing} are not post-instruction positions of this model "
                             f"(it has {len(candidates.positions)}: {candidates.positions[0]} … -1); "
                             "choose positions in that range.")
    return [p for p in candidates.positions if p in wanted]


def _read_checkpoint(path: str | Path | None) -> dict[tuple[int, int], dict]:
    """Rows of a partial selection (a truncated last line from a crash is ignored)."""
    if path is None or not Path(path).is_file():
        return {}
    rows, bad = {}, False
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad = True
            continue
        rows[(row["pos"], row["layer"])] = row
    if bad:  # rewrite without the torn line, so appended rows start on a fresh line
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows.values()))
    return rows
