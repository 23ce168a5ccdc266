"""The DIM run: prompts → filtering → candidates → selection → saved direction + figures.

One function, :func:`run_dim`, serves the CLI (``refusal-tl dim``) and the notebooks.
Everything it writes under ``RUN_DIR/dim/`` is atomic and carries its metadata; the
candidate grid and every scored candidate are checkpointed, so a rerun after an
interrupt resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from refusal_tl import data, plotting
from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.extract import DimCandidates, EoiActivations, dim_candidates, eoi_activations, filter_by_score
from refusal_tl.dim.select import Selection, SelectionConfig, select_direction
from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import Provenance, RefusalDirection
from refusal_tl.io import atomic_write, ensure_dir, json_digest, load_tensors, read_json, save_tensors, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.steer.forward import refusal_scores

log = logging.getLogger(__name__)


@dataclass
class DimResult:
    direction: RefusalDirection
    candidates: DimCandidates
    selection: Selection
    config: DimConfig
    prompts: dict[str, list[str]]
    seconds: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def summary_table(self) -> pd.DataFrame:
        d = self.direction
        return pd.DataFrame([dict(layer=d.layer, position=d.pos, norm=d.norm,
                                  bypass=d.provenance.bypass, induce=d.provenance.induce, kl=d.provenance.kl)])

    def figures(self) -> dict:
        """The run's Plotly figures, by file stem."""
        return {
            "selection_landscape": plotting.selection_landscape(self.selection),
            "kl_scores_fig16": plotting.kl_scores(self.selection),
            "refusal_score_by_layer": plotting.refusal_score_by_layer(self.selection),
        }


def prompt_sets(cfg: DimConfig) -> dict[str, list[str]]:
    """The four prompt lists of a run: bundled splits unless other sources are given."""
    return {
        "harmful_train": source(cfg.harmful_train, "harmful", "train", cfg.n_train),
        "harmless_train": source(cfg.harmless_train, "harmless", "train", cfg.n_train),
        "harmful_val": source(cfg.harmful_val, "harmful", "val", cfg.n_val),
        "harmless_val": source(cfg.harmless_val, "harmless", "val", cfg.n_val_harmless or cfg.n_val),
    }


def source(spec: str | None, kind: str, split: str, n: int | None) -> list[str]:
    """Prompts from ``spec`` (see :func:`refusal_tl.data.load_source`), the bundled split if None.

    A Hub set that cannot be reached (no network) falls back to the bundled split with a
    warning, so the ``paper`` profile also runs offline.
    """
    if spec is None:
        return data.bundled(kind, split, n)
    try:
        return data.load_source(spec, n)
    except RefusalTLError as err:
        if not spec.startswith("hub:"):
            raise
        log.warning("%s; using the bundled %s %s split instead.", err, kind, split)
        return data.bundled(kind, split, n)


def baseline_scores(model: RefusalModel, prompts: list[str], batch_size: int, desc: str | None = None,
                    cache_dir: str | Path | None = None) -> torch.Tensor:
    """Refusal scores without intervention, cached in ``cache_dir`` (keyed by the model's
    weights and the prompts), so the stages of one run directory score each set once."""
    path = None
    if cache_dir is not None:
        key = json_digest({**model.key, "prompts": prompts})[:16]
        path = Path(cache_dir) / f"baseline-scores-{key}.json"
        if path.is_file():
            saved = read_json(path, "baseline score cache")
            return torch.tensor(saved["scores"], dtype=getattr(torch, saved["dtype"]))
    scores = refusal_scores(model, prompts, [], batch_size, desc=desc)
    if path is not None:
        write_json(path, {"dtype": str(scores.dtype).removeprefix("torch."), "scores": scores.tolist()})
    return scores


def filter_val(model: RefusalModel, harmful: list[str], harmless: list[str], batch_size: int, split: str = "val",
               cache_dir: str | Path | None = None):
    """Baseline-score filtering of the validation prompts (docs/algorithms.md §0).

    Harmless val is *not* truncated to the harmful count (the official code's behaviour):
    the KL filter then averages over more prompts. KL is heavy-tailed, and with as few
    harmless prompts as the model refuses harmful ones (18 on the bundled model's ``cpu``
    profile) the selected candidate's KL was underestimated by half. ``cache_dir`` keeps the
    scores (:func:`baseline_scores`).
    """
    s_harm = baseline_scores(model, harmful, batch_size, f"scoring harmful {split}", cache_dir)
    s_safe = baseline_scores(model, harmless, batch_size, f"scoring harmless {split}", cache_dir)
    kh, ks = filter_by_score(s_harm, s_safe, truncate_harmless=False)
    return [harmful[i] for i in kh], [harmless[i] for i in ks]


def run_dim(cfg: DimConfig, out: str | Path | None = None, model: RefusalModel | None = None) -> DimResult:
    """Extract DIM candidates, select a direction (Arditi), and save it under ``out/dim``."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    model = model or load_model(cfg.model, cfg.device, cfg.dtype)
    model.check_config(cfg)
    seconds["load"] = time.perf_counter() - t0
    dim_dir = ensure_dir(Path(out) / "dim") if out is not None else None
    sets = prompt_sets(cfg)

    t0 = time.perf_counter()
    candidates, sets = _candidates(model, cfg, sets, dim_dir)
    seconds["extract"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    harm_val, safe_val = sets["harmful_val"], sets["harmless_val"]
    if cfg.filter_prompts:
        harm_val, safe_val = filter_val(model, harm_val, safe_val, cfg.batch_size, cache_dir=dim_dir)
        _check_nonempty(harm_val, "harmful validation")
    sets.update(harmful_val=harm_val, harmless_val=safe_val)
    sel_cfg = SelectionConfig(score_late_layers=cfg.score_late_layers, prune=cfg.prune, batch_size=cfg.batch_size,
                              positions=cfg.positions)
    sel_key = {**_extraction_key(cfg, model), "n_val": cfg.n_val, "n_val_harmless": cfg.n_val_harmless,
               "harmful_val": cfg.harmful_val, "truncate_val": False,
               "harmless_val": cfg.harmless_val, "selection": _selection_key(sel_cfg)}
    checkpoint = dim_dir / f"selection_partial-{json_digest(sel_key)[:10]}.jsonl" if dim_dir else None
    selection = select_direction(model, candidates, harm_val, safe_val, sel_cfg, checkpoint)
    seconds["select"] = time.perf_counter() - t0

    best = selection.best
    direction = RefusalDirection(
        vector=candidates.get(selection.pos, selection.layer), layer=selection.layer, pos=selection.pos,
        model=model.name, weights_sha=model.weights_sha, method="dim", dtype=model.dtype_name,
        provenance=Provenance(bypass=float(best.bypass), induce=float(best.induce), kl=float(best.kl),
                   profile=cfg.profile, filtered=cfg.filter_prompts, relaxed=list(selection.relaxed)),
    )
    result = DimResult(direction, candidates, selection, cfg, sets, seconds, dim_dir)
    if dim_dir is not None:
        save_dim(result, dim_dir)
    return result


def _candidates(model, cfg, sets, dim_dir) -> tuple[DimCandidates, dict]:
    """Load the checkpointed grid if it matches this config, else extract it."""
    path = dim_dir / "candidates.safetensors" if dim_dir else None
    key = _extraction_key(cfg, model)
    if path is not None and path.is_file():
        cached = _load_candidates(path)
        if cached is not None and cached[1].get("key") == key:
            log.info("Reusing DIM candidates from %s", path)
            sets.update(cached[1]["train_prompts"])
            return cached[0], sets
    for name in ("harmful_train", "harmless_train"):
        _check_nonempty(sets[name], name.replace("_", " "))
    bs, scores = cfg.batch_size, cfg.filter_prompts
    harm = eoi_activations(model, sets["harmful_train"], bs, scores, desc="harmful train activations")
    safe = eoi_activations(model, sets["harmless_train"], bs, scores, desc="harmless train activations")
    if cfg.filter_prompts:
        kh, ks = filter_by_score(harm.scores, safe.scores)
        _check_nonempty(kh, "harmful train (after keeping only prompts the model refuses)")
        harm, safe = _subset(harm, kh), _subset(safe, ks)
        sets["harmful_train"] = [sets["harmful_train"][i] for i in kh]
        sets["harmless_train"] = [sets["harmless_train"][i] for i in ks]
    positions = list(range(-model.chat.n_eoi, 0))
    candidates = dim_candidates(harm, safe, positions)
    if path is not None:
        _save_candidates(path, candidates, key, {k: sets[k] for k in ("harmful_train", "harmless_train")})
    return candidates, sets


def _extraction_key(cfg: DimConfig, model: RefusalModel) -> dict:
    """What determines the candidate grid (a checkpoint is reused only if this matches)."""
    return {"model": model.name, "model_sha": model.weights_sha, "dtype": model.dtype_name, "n_train": cfg.n_train,
            "filter": cfg.filter_prompts, "harmful_train": cfg.harmful_train, "harmless_train": cfg.harmless_train}


def _selection_key(cfg: SelectionConfig) -> dict:
    """The settings that change selection scores (``positions`` only when restricted, so run
    directories written before it existed keep their checkpoint)."""
    key = asdict(cfg) | {"batch_size": None}
    return key if cfg.positions is not None else {k: v for k, v in key.items() if k != "positions"}


def _subset(a: EoiActivations, idx: list[int]) -> EoiActivations:
    return EoiActivations(a.acts[idx], a.scores[idx])


def _check_nonempty(items, what: str) -> None:
    if not items:
        raise RefusalTLError(
            f"no {what} prompts left: the model refuses none of them (baseline refusal score ≤ 0). "
            "Use more or blunter harmful prompts, or pass --no-filter."
        )


def _save_candidates(path: Path, c: DimCandidates, key: dict, train_prompts: dict) -> None:
    save_tensors(path, {"vectors": c.vectors}, {"key": key, "positions": c.positions, "n_harmful": c.n_harmful,
                                                "n_harmless": c.n_harmless, "train_prompts": train_prompts})


def _load_candidates(path: Path):
    """The saved grid and its metadata, or None when the file is unreadable (it is then rebuilt)."""
    try:
        tensors, meta = load_tensors(path, "DIM candidate grid")
        return DimCandidates(tensors["vectors"], meta["positions"], meta["n_harmful"], meta["n_harmless"]), meta
    except (RefusalTLError, KeyError):
        return None


def save_dim(result: DimResult, dim_dir: Path) -> None:
    """Write direction, selection table, metadata and figures under ``dim_dir``."""
    result.direction.save(dim_dir / "direction.safetensors")
    table = result.selection.table
    atomic_write(dim_dir / "selection.csv", lambda tmp: table.to_csv(tmp, index=False))
    write_json(dim_dir / "metadata.json", {
        "config": result.config.to_dict(),
        "model": result.direction.model,
        "weights_sha": result.direction.weights_sha,
        "dtype": result.direction.dtype,
        "selected": {"pos": result.selection.pos, "layer": result.selection.layer,
                     "norm": result.direction.norm, **result.direction.provenance.to_dict()},
        "baseline": {"harmful_val_refusal_score": result.selection.baseline_bypass,
                     "harmless_val_refusal_score": result.selection.baseline_induce},
        "n_prompts": {k: len(v) for k, v in result.prompts.items()},
        "seconds": result.seconds,
        "torch": torch.__version__,
    })
    for name, fig in result.figures().items():
        plotting.save_figure(fig, dim_dir / "figures" / name)


# What the later stages read from a DIM run directory.

def dim_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/dim/direction.safetensors``, or a clear error naming the command that makes it."""
    path = Path(run_dir) / "dim" / "direction.safetensors"
    if not path.is_file():
        raise RefusalTLError(f"no DIM direction at {path}: run `refusal-tl dim --out {run_dir}` first.")
    return path


def load_dim(run_dir: Path, model: RefusalModel) -> RefusalDirection:
    """The DIM direction of ``run_dir``, checked against ``model`` (width and name)."""
    path = dim_path(run_dir)
    dim = RefusalDirection.load(path)
    dim.check_width(model.d_model)
    if dim.model != model.name:
        raise RefusalTLError(f"{path} was extracted from {dim.model}, not {model.name}; pass --model {dim.model}.")
    return dim


def val_sets(run_dir: Path, model: RefusalModel, batch_size: int) -> tuple[list[str], list[str]]:
    """The DIM run's filtered validation prompts (RDO's ``last20`` selection, cone filters, RepInd candidates)."""
    meta = read_json(run_dir / "dim" / "metadata.json", "DIM metadata")
    dim_cfg = DimConfig(**meta["config"])
    sets = prompt_sets(dim_cfg)
    if not dim_cfg.filter_prompts:
        return sets["harmful_val"], sets["harmless_val"]
    return filter_val(model, sets["harmful_val"], sets["harmless_val"], batch_size, cache_dir=run_dir / "dim")
