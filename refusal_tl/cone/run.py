"""The cone run: DIM (and RDO) result → training pairs → one cone per dimension → selection → files.

One function, :func:`run_cone`, serves the CLI (``refusal-tl cone``) and notebook 03. It
reads ``RUN_DIR/dim/direction.safetensors`` (α = ‖DIM‖, the layer) and, with
``init="rdo"``, ``RUN_DIR/rdo/direction.safetensors``; for every dimension N it writes
``RUN_DIR/cone-{N}/``: ``basis.safetensors`` (a :class:`~refusal_tl.geometry.RefusalCone`)
with its JSON, ``history.json`` (loss per step), ``selection.json`` and ``metadata.json``.
Training checkpoints every step (``checkpoint.safetensors``); a finished dimension whose
settings match is loaded instead of retrained, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from refusal_tl import plotting
from refusal_tl.cone.config import ConeRunConfig
from refusal_tl.cone.select import ConeSelection, select_cone
from refusal_tl.cone.train import grow, train_cone
from refusal_tl.dim.run import load_dim, val_sets
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.scorer import Scorer
from refusal_tl.geometry import Provenance, RefusalCone, RefusalDirection
from refusal_tl.io import ensure_dir, json_digest, read_json, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.optim import SphereRun, check_checkpoints
from refusal_tl.optim.sphere import gram_schmidt
from refusal_tl.rdo.run import stage_pairs


@dataclass
class ConeResult:
    """One selected cone per dimension, with its training run and selection scores."""

    cones: dict[int, RefusalCone]
    histories: dict[int, list[dict]]
    selections: dict[int, ConeSelection]
    dim: RefusalDirection
    config: ConeRunConfig
    info: dict
    seconds: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def summary_table(self) -> pd.DataFrame:
        return pd.DataFrame([dict(dims=n, step=s.step + 1, **{k: s.chosen.get(k) for k in
                                                             ("sample_bypass", "sample_induce", "sample_kl_max")})
                             for n, s in self.selections.items()])

    def figures(self) -> dict:
        return {f"cone_{n}_loss": plotting.rdo_loss_curves(
                    h, self.selections[n].step, f"{n}-dimensional cone: losses summed over samples and basis")
                for n, h in self.histories.items()}


def cone_dir(run_dir: str | Path, dims: int) -> Path:
    """``RUN/cone-{dims}``: one folder per cone dimension, like ``repind-{k}`` per RepInd direction."""
    return Path(run_dir) / f"cone-{dims}"


def rdo_init(run_dir: Path, model: RefusalModel, dim: RefusalDirection) -> torch.Tensor:
    """The ``init="rdo"`` start: the RDO direction and the part of DIM orthogonal to it, two
    directions the run already found (DIM lies in their cone when its cosine with RDO is positive)."""
    path = run_dir / "rdo" / "direction.safetensors"
    if not path.is_file():
        raise RefusalTLError(f"--init rdo needs {path}: run `refusal-tl rdo --run {run_dir}` first, "
                             "or use --init random.")
    rdo = RefusalDirection.load(path)
    rdo.check_width(model.d_model)
    return gram_schmidt(torch.stack([rdo.vector.float(), dim.vector.float()]))


def run_cone(cfg: ConeRunConfig, run_dir: str | Path, model: RefusalModel | None = None,
             progress: bool = True) -> ConeResult:
    """Train, select and save one cone per dimension in ``cfg.dims`` under ``run_dir/cone``."""
    run_dir = Path(run_dir)
    model = model or load_model(cfg.model)
    model.check_config(cfg)
    dim = load_dim(run_dir, model)
    layer, alpha = model.check_layer(dim.layer), dim.norm
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    check_checkpoints(run_dir.glob("cone-*/checkpoint.safetensors"))
    harmful_val, harmless_val = (s[:cfg.n_val] for s in val_sets(run_dir, model, cfg.batch_size))
    pairs, info = stage_pairs(run_dir, model, dim, cfg, run_dir / "cone-targets")
    scorer = Scorer(model, harmful_val, harmless_val, cfg.batch_size)
    info.update(val=dict(harmful=len(harmful_val), harmless=len(harmless_val)), init=cfg.init)
    seconds["prepare"] = time.perf_counter() - t0

    previous = rdo_init(run_dir, model, dim)[:cfg.dims[0]] if cfg.init == "rdo" else None
    cones, histories, selections = {}, {}, {}
    for n in cfg.dims:
        t0 = time.perf_counter()
        out = ensure_dir(cone_dir(run_dir, n))
        init = grow(previous, n, model.d_model, cfg.cone.seed + n)
        run = train_cone(model, pairs, alpha, layer, init, cfg.cone, out / "checkpoint.safetensors",
                         cfg.max_steps, progress)
        seconds[f"train_dim{n}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        selections[n] = _selected(out, run, scorer, alpha, layer, cfg)
        seconds[f"select_dim{n}"] = time.perf_counter() - t0
        cones[n] = _save_dim(out, run, selections[n], model, dim, cfg, info, seconds)
        histories[n] = run.history
        previous = run.vectors[run.lowest_loss_step]  # official: grow from the lowest-loss basis
        if cfg.early_stop and min(selections[n].chosen["basis_bypass"]) >= 0:
            info["early_stop"] = n
            break
    result = ConeResult(cones, histories, selections, dim, cfg, info, seconds, run_dir)
    for name, fig in result.figures().items():
        plotting.save_figure(fig, cone_dir(run_dir, int(name.split("_")[1])) / "figures" / name)
    return result


def _selected(out: Path, run: SphereRun, scorer: Scorer, alpha: float, layer: int,
              cfg: ConeRunConfig) -> ConeSelection:
    """The selection of this run, from ``selection.json`` when it was made for the same run."""
    key = json_digest({"run": run.key, "steps": run.step, "how": cfg.selection, "n_fixed": cfg.filter_samples,
                       "kl": cfg.kl_threshold, "val": (len(scorer.harmful), len(scorer.harmless))})
    path = out / "selection.json"
    if path.is_file():
        saved = read_json(path, "cone selection")
        if saved.get("key") == key:
            return ConeSelection(saved["step"], saved["how"], saved["table"], tuple(saved["relaxed"]))
    sel = select_cone(scorer, run, alpha, layer, cfg.selection, cfg.filter_samples, cfg.kl_threshold)
    write_json(path, {"key": key, "step": sel.step, "how": sel.how, "table": sel.table, "relaxed": list(sel.relaxed)})
    return sel


def _save_dim(out: Path, run: SphereRun, sel: ConeSelection, model: RefusalModel, dim: RefusalDirection,
              cfg: ConeRunConfig, info: dict, seconds: dict) -> RefusalCone:
    chosen = run.history[sel.step]
    cone = RefusalCone(run.vectors[sel.step].float(), dim.layer, dim.norm, model.name, model.weights_sha,
                       dtype=model.dtype_name,
                       provenance=Provenance(step=chosen["step"], train_loss=chosen["train_loss"], selection=sel.how,
                                             relaxed=list(sel.relaxed), profile=cfg.profile,
                                             n_samples=cfg.cone.n_samples, init=cfg.init))
    cone.save(out / "basis.safetensors")
    write_json(out / "history.json", run.history)
    write_json(out / "metadata.json", {
        "config": cfg.to_dict(), **model.key,
        "selected": {**cone.provenance.to_dict(), **sel.chosen}, "steps": run.step, "stopped_by_plateau": run.stopped,
        "data": info, "seconds": seconds, "torch": torch.__version__,
    })
    return cone

