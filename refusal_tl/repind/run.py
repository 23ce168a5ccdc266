"""The iterative RepInd run: DIM → training pairs → RepInd-1 … RepInd-K (docs/algorithms.md §8).

One function, :func:`run_repind`, serves the CLI (``refusal-tl repind``) and notebook 04. It
reads ``RUN_DIR/dim/direction.safetensors`` (α, l_add and the first member of V) and for
k = 1 … K trains ``candidates`` random starts against V = {DIM, RepInd-1, …, RepInd-(k−1)},
takes each candidate's lowest-loss vector, keeps the one with the lowest mean refusal score
under ablation on the filtered harmful validation prompts, and writes
``RUN_DIR/repind-{k}/``: ``direction.safetensors`` (α·r̂, method ``repind``), ``history.json``
(the chosen candidate's losses), ``metadata.json`` (every candidate's score) and one
``candidate{c}.safetensors`` checkpoint per candidate, written every step: a rerun resumes
within a candidate and skips finished directions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from refusal_tl import plotting
from refusal_tl.dim.run import load_dim, val_sets
from refusal_tl.errors import RefusalTLError
from refusal_tl.geometry import Provenance, RefusalDirection
from refusal_tl.io import ensure_dir, json_digest, read_json, tensor_digest, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.optim import check_checkpoints
from refusal_tl.rdo.config import RdoRunConfig
from refusal_tl.rdo.run import RdoResult, run_rdo, stage_pairs
from refusal_tl.repind.config import RepIndRunConfig
from refusal_tl.repind.step import TraceCache
from refusal_tl.repind.train import train_repind
from refusal_tl.steer.forward import refusal_scores
from refusal_tl.steer.hooks import ablation_hooks
from refusal_tl.steer.windows import TrainingPair


@dataclass
class RepIndResult:
    """RepInd-1 … RepInd-K with their training histories and candidate scores."""

    directions: list[RefusalDirection]
    histories: list[list[dict]]
    candidates: list[list[dict]]
    dim: RefusalDirection
    config: RepIndRunConfig
    info: dict
    seconds: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def summary_table(self) -> pd.DataFrame:
        rows = [(d, d.provenance) for d in self.directions]
        return pd.DataFrame([dict(direction=f"RepInd-{p.k}", candidate=p.candidate + 1, step=p.step,
                                  val_refusal_score=p.val_refusal_score,
                                  cosines_to_earlier=", ".join(f"{c:.3f}" for c in p.cosines_to_V)) for d, p in rows])

    def figures(self) -> dict:
        lowest = lambda h: min(range(len(h)), key=lambda i: h[i]["train_loss"])
        return {f"repind_{k + 1}_loss": plotting.rdo_loss_curves(h, lowest(h), f"RepInd-{k + 1}: losses")
                for k, h in enumerate(self.histories)}


@dataclass
class IndependenceResult:
    """Paper §6 in one stage: RDO⊥ (RDO held orthogonal to DIM, Fig. 6's reference) and RepInd-1 … K."""

    perp: RdoResult
    repind: RepIndResult

    @property
    def config(self) -> RepIndRunConfig:
        return self.repind.config

    def summary_table(self) -> pd.DataFrame:
        return self.repind.summary_table()

    def figures(self) -> dict:
        return self.repind.figures()


def run_independence(rdo_cfg: RdoRunConfig, cfg: RepIndRunConfig, run_dir: str | Path, model: RefusalModel,
                     progress: bool = True) -> IndependenceResult:
    """RDO⊥ (``RUN/rdo-perp``) and RepInd-1 … K (``RUN/repind-{k}``) from the DIM run in ``run_dir``."""
    dim = load_dim(Path(run_dir), model)
    perp = run_rdo(rdo_cfg, run_dir, model, name="rdo-perp", orthogonal_to=[dim], progress=progress)
    return IndependenceResult(perp, run_repind(cfg, run_dir, model, progress))


def repind_dir(run_dir: str | Path, k: int) -> Path:
    return Path(run_dir) / f"repind-{k}"


def run_repind(cfg: RepIndRunConfig, run_dir: str | Path, model: RefusalModel | None = None,
               progress: bool = True) -> RepIndResult:
    """Find ``cfg.k`` representationally independent refusal directions under ``run_dir``."""
    run_dir = Path(run_dir)
    model = model or load_model(cfg.model)
    model.check_config(cfg)
    dim = load_dim(run_dir, model)
    layer, alpha = model.check_layer(dim.layer), dim.norm
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    check_checkpoints(run_dir.glob("repind-*/candidate*.safetensors"))
    harmful_val = val_sets(run_dir, model, cfg.batch_size)[0][:cfg.n_val]
    pairs, info = stage_pairs(run_dir, model, dim, cfg, run_dir / "repind-targets")
    if not harmful_val:
        raise RefusalTLError("no filtered harmful validation prompts to choose RepInd candidates with; "
                             "rerun `refusal-tl dim` with more validation prompts (--n-val).")
    info["val"] = len(harmful_val)
    seconds["prepare"] = time.perf_counter() - t0

    V = [dim.unit.float().cpu()]
    directions, histories, candidates = [], [], []
    for k in range(1, cfg.k + 1):
        t0 = time.perf_counter()
        direction, history, scores = _iteration(k, V, model, pairs, alpha, layer, harmful_val, cfg, run_dir,
                                                progress)
        seconds[f"repind{k}"] = time.perf_counter() - t0
        directions.append(direction)
        histories.append(history)
        candidates.append(scores)
        V.append(direction.unit.float().cpu())
    result = RepIndResult(directions, histories, candidates, dim, cfg, info, seconds, run_dir)
    for name, fig in result.figures().items():
        plotting.save_figure(fig, repind_dir(run_dir, int(name.split("_")[1])) / "figures" / name)
    return result


def _iteration(k: int, V: list[torch.Tensor], model: RefusalModel, pairs: list[TrainingPair], alpha: float, layer: int,
               harmful_val: list[str], cfg: RepIndRunConfig, run_dir: Path, progress: bool):
    """RepInd-k: every candidate trained (or resumed), scored, the best saved; a finished
    direction made with the same settings and V is loaded instead."""
    out = ensure_dir(repind_dir(run_dir, k))
    key = json_digest({"config": cfg.to_dict(), "V": [tensor_digest(v) for v in V], "alpha": round(alpha, 6),
                       "val": json_digest(harmful_val), "model": model.key})
    meta_path = out / "metadata.json"
    if (out / "direction.safetensors").is_file() and meta_path.is_file():
        meta = read_json(meta_path, "RepInd metadata")
        if meta.get("key") == key:
            return (RefusalDirection.load(out / "direction.safetensors"),
                    read_json(out / "history.json", "RepInd history"), meta["candidates"])
    Vt = torch.stack(V)
    cache = TraceCache(model, pairs, Vt, cfg.repind.ind_layers(model.n_layers), cfg.batch_size, cfg.repind.tokens)
    runs, scores = [], []
    for c in range(cfg.candidates):
        rcfg = replace(cfg.repind, seed=cfg.repind.seed + 1000 * (k - 1) + c)
        run = train_repind(model, pairs, alpha, layer, Vt, rcfg, out / f"candidate{c}.safetensors", cfg.max_steps,
                           progress, cache, desc=f"RepInd-{k} candidate {c + 1}/{cfg.candidates}")
        vec = run.vectors[run.lowest_loss_step][0].float()
        runs.append(run)
        scores.append({"candidate": c, "seed": rcfg.seed, "steps": run.step, "lowest_loss_step": run.lowest_loss_step,
                       "train_loss": run.history[run.lowest_loss_step]["train_loss"],
                       "val_refusal_score": val_score(model, harmful_val, vec, cfg.batch_size)})
    best = min(range(len(scores)), key=lambda c: scores[c]["val_refusal_score"])
    run = runs[best]
    step = run.lowest_loss_step
    direction = RefusalDirection(
        vector=alpha * run.vectors[step][0].float().cpu(), layer=layer, pos=None, model=model.name,
        weights_sha=model.weights_sha, method="repind", dtype=model.dtype_name,
        provenance=Provenance(k=k, candidate=best, step=step + 1, train_loss=run.history[step]["train_loss"],
                   val_refusal_score=scores[best]["val_refusal_score"], profile=cfg.profile, alpha=alpha,
                   independent_of=len(V), cosines_to_V=[float(torch.dot(run.vectors[step][0].float(), v))
                                                         for v in V]),
    )
    direction.save(out / "direction.safetensors")
    write_json(out / "history.json", run.history)
    write_json(meta_path, {"key": key, "config": cfg.to_dict(), **model.key,
                           "selected": direction.provenance.to_dict(), "candidates": scores,
                           "torch": torch.__version__})
    return direction, run.history, scores


def val_score(model: RefusalModel, harmful_val: list[str], r: torch.Tensor, batch_size: int = 16) -> float:
    """Mean refusal score on ``harmful_val`` with r ablated at every layer (lower: a stronger direction)."""
    hooks = ablation_hooks(r.to(model.device), model.n_layers)
    return float(refusal_scores(model, harmful_val, hooks, batch_size).mean())
