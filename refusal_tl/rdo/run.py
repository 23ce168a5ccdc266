"""The RDO run: DIM direction → training pairs and targets → training → selection → saved direction.

One function, :func:`run_rdo`, serves the CLI (``refusal-tl rdo``) and notebook 02. It
reads ``RUN_DIR/dim/direction.safetensors`` (α = ‖DIM‖, l_add = the DIM layer) and
writes under ``RUN_DIR/rdo/``: ``direction.safetensors`` (α·r̂, method ``rdo``) with its
JSON, ``history.json`` (loss per step and component), ``metadata.json``, the cached
targets and figures. Training checkpoints after every step (``checkpoint.safetensors``,
no pickle); a rerun of the same command resumes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch

from refusal_tl import data, plotting
from refusal_tl.dim.run import filter_val, load_dim, source, val_sets
from refusal_tl.errors import RefusalTLError, check_choice
from refusal_tl.geometry import Provenance, RefusalDirection
from refusal_tl.io import ensure_dir, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.optim import SphereRun, check_checkpoints
from refusal_tl.rdo.config import RdoRunConfig, RefusalTargets
from refusal_tl.rdo.select import RdoSelection, select_rdo
from refusal_tl.rdo.targets import make_targets
from refusal_tl.rdo.train import train_rdo
from refusal_tl.steer.metrics import is_refusal
from refusal_tl.steer.windows import Example, TrainingPair

log = logging.getLogger(__name__)


@dataclass
class RdoResult:
    direction: RefusalDirection
    dim: RefusalDirection
    run: SphereRun
    selection: RdoSelection
    config: RdoRunConfig
    info: dict
    seconds: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def cosine_to_dim(self) -> float:
        a, b = self.direction.vector.float(), self.dim.vector.float()
        return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

    def summary_table(self) -> pd.DataFrame:
        p = self.direction.provenance
        return pd.DataFrame([dict(step=p.step, cosine_to_dim=self.cosine_to_dim, train_loss=p.train_loss)])

    def figures(self) -> dict:
        return {"rdo_loss_curves": plotting.rdo_loss_curves(self.run.history, self.selection.step)}


def training_pairs(model: RefusalModel, dim: RefusalDirection, n: int | None = None,
                   harmful: list[str] | None = None, harmless: list[str] | None = None,
                   filter_prompts: bool = True, batch_size: int = 16,
                   cache_dir: str | Path | None = None,
                   refusal_targets: RefusalTargets = "all") -> tuple[list[TrainingPair], dict]:
    """RDO training pairs: filtered, balanced prompts with their targets (docs/algorithms.md §0, §4).

    Harmful prompts the model refuses are paired with harmless prompts it answers,
    balanced to ``min(n_harm, n_safe)``; targets come from :func:`make_targets` (cached in
    ``cache_dir``). Defaults: the first ``n`` prompts of the bundled train splits.

    ``refusal_targets="refusing"`` keeps L_add to the t_refusal texts that are refusals
    (substring judge): on a small model DIM addition often fails to refuse (the bundled
    model answers 39 % of its train prompts plainly), and such a target teaches r to make
    the model *answer* under addition. A pair with a non-refusing t_refusal borrows the
    refusal example of a refusing pair (cycled), so every pair still has all three terms.
    """
    check_choice("refusal_targets", refusal_targets, ("all", "refusing"))
    harmful = data.bundled("harmful", "train", n) if harmful is None else harmful
    harmless = data.bundled("harmless", "train", n) if harmless is None else harmless
    n_before = (len(harmful), len(harmless))
    if filter_prompts:  # the same baseline-score filter as DIM; balancing comes next
        harmful, harmless = filter_val(model, harmful, harmless, batch_size, "train", cache_dir)
    k = min(len(harmful), len(harmless))
    if k == 0:
        raise RefusalTLError("no RDO training pairs left after filtering (the model refuses none of the harmful "
                             "prompts, or all harmless ones); use more prompts or --no-filter.")
    harmful, harmless = harmful[:k], harmless[:k]
    targets = make_targets(model, dim, harmful, harmless, batch_size, cache_dir)
    refusal = list(zip(harmless, targets.refusal.targets))
    info = {"prompts_before_filter": n_before, "pairs": k, "filtered": filter_prompts, "targets": targets.summary(),
            "refusal_targets": refusal_targets,
            "refusal_targets_refusing": sum(is_refusal(t) for t in targets.refusal.targets)}
    if refusal_targets == "refusing":
        refusal = refusing_refusals(refusal)
    pairs = [TrainingPair(Example(harmful[i], targets.answer.targets[i]), Example(*refusal[i]),
                          Example(harmless[i], targets.retain.targets[i])) for i in range(k)]
    return pairs, info


def stage_pairs(run_dir: Path, model: RefusalModel, dim: RefusalDirection, cfg, own_dir: Path
                ) -> tuple[list[TrainingPair], dict]:
    """The training pairs of a stage that trains on RDO's pairs (RDO, RDO⊥, sweeps, cones, RepInd),
    from ``cfg``'s prompt sources and sizes. Targets depend on DIM and the prompts only, so they
    are cached in ``RUN/rdo`` when it exists (any stage reuses RDO's), else in ``own_dir``."""
    shared = run_dir / "rdo"
    cache = shared if shared.is_dir() else ensure_dir(own_dir)
    harmful = source(cfg.harmful_train, "harmful", "train", cfg.n_train)
    harmless = source(cfg.harmless_train, "harmless", "train", cfg.n_train)
    return training_pairs(model, dim, cfg.n_train, harmful, harmless, cfg.filter_prompts, cfg.batch_size,
                          cache, cfg.refusal_targets)


def refusing_refusals(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Replace each (prompt, t_refusal) whose target is not a refusal by a refusing one, cycling."""
    flags = [is_refusal(target) for _, target in examples]
    refusing = [ex for ex, ok in zip(examples, flags) if ok]
    if not refusing:
        log.warning("No t_refusal target is a refusal (DIM addition never made the model refuse); "
                    "L_add keeps all of them.")
        return examples
    out, j = [], 0
    for ex, ok in zip(examples, flags):
        if ok:
            out.append(ex)
        else:
            out.append(refusing[j % len(refusing)])
            j += 1
    return out


def run_rdo(cfg: RdoRunConfig, run_dir: str | Path, model: RefusalModel | None = None,
            name: str = "rdo", progress: bool = True,
            orthogonal_to: list[RefusalDirection] | None = None) -> RdoResult:
    """Train an RDO direction from the DIM result in ``run_dir`` and save it under ``run_dir/name``.

    ``name`` lets sweeps (e.g. over λ_ret) keep one sub-directory per setting.
    ``orthogonal_to``: hard constraints, r ⟂ each of them at initialisation and after every
    step (RDO⊥ with the DIM direction, paper §6; docs/algorithms.md §5, §8).
    """
    run_dir = Path(run_dir)
    seconds: dict[str, float] = {}
    model = model or load_model(cfg.model)
    model.check_config(cfg)
    dim = load_dim(run_dir, model)
    layer = model.check_layer(dim.layer if cfg.layer is None else cfg.layer)
    for d in orthogonal_to or []:
        d.check_width(model.d_model)  # before anything is generated or written
    out = ensure_dir(run_dir / name)
    alpha = dim.norm

    t0 = time.perf_counter()
    check_checkpoints(out.glob("checkpoint*.safetensors"))
    pairs, info = stage_pairs(run_dir, model, dim, cfg, out)
    seconds["targets"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    constraints = None
    if orthogonal_to:
        constraints = torch.stack([d.vector.float() for d in orthogonal_to]).to(model.device)
    runs = train_restarts(model, pairs, alpha, layer, cfg, out, progress, constraints)
    run = min(runs, key=lambda r: r.history[r.lowest_loss_step]["train_loss"])  # several seeds: lowest loss
    info["restarts"] = [{"seed": r.key["seed"], "steps": r.step, "chosen": r is run,
                         "lowest_loss": r.history[r.lowest_loss_step]["train_loss"]} for r in runs]
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    val = val_sets(run_dir, model, cfg.batch_size) if cfg.selection == "last20" else (None, None)
    selection = select_rdo(model, run, alpha, layer, cfg.selection, *val, batch_size=cfg.batch_size)
    seconds["select"] = time.perf_counter() - t0

    chosen = run.history[selection.step]
    direction = RefusalDirection(
        vector=alpha * run.vectors[selection.step][0], layer=layer, pos=None, model=model.name,
        weights_sha=model.weights_sha, method="rdo" if not orthogonal_to else "rdo-perp", dtype=model.dtype_name,
        provenance=Provenance(step=chosen["step"], train_loss=chosen["train_loss"], selection=selection.how,
                   relaxed=list(selection.relaxed), profile=cfg.profile, alpha=alpha, dim_layer=dim.layer,
                   seed=run.key["seed"],
                   orthogonal_to=[d.metadata() for d in orthogonal_to or []]),
    )
    result = RdoResult(direction, dim, run, selection, cfg, info, seconds, out)
    save_rdo(result, out)
    return result


def train_restarts(model: RefusalModel, pairs: list[TrainingPair], alpha: float, layer: int, cfg: RdoRunConfig,
                   out: Path, progress: bool = True, constraints: torch.Tensor | None = None) -> list[SphereRun]:
    """Train ``cfg.restarts`` initialisations (seeds ``seed``, ``seed + 1``, …), each with its own
    checkpoint (``checkpoint.safetensors`` for the first, ``checkpoint_seed{s}.safetensors`` for the others)."""
    runs = []
    for i in range(cfg.restarts):
        rdo = replace(cfg.rdo, seed=cfg.rdo.seed + i)
        ckpt = out / ("checkpoint.safetensors" if i == 0 else f"checkpoint_seed{rdo.seed}.safetensors")
        runs.append(train_rdo(model, pairs, alpha, layer, rdo, ckpt, constraints, cfg.max_steps, progress))
    return runs


def save_rdo(result: RdoResult, out: Path) -> None:
    """Write direction, loss history, metadata and figures under ``out``."""
    result.direction.save(out / "direction.safetensors")
    write_json(out / "history.json", result.run.history)
    write_json(out / "metadata.json", {
        "config": result.config.to_dict(),
        "model": result.direction.model,
        "weights_sha": result.direction.weights_sha,
        "dtype": result.direction.dtype,
        "selected": {**result.direction.provenance.to_dict(), "norm": result.direction.norm,
                     "layer": result.direction.layer},
        "selection_table": result.selection.table,
        "cosine_to_dim": result.cosine_to_dim,
        "steps": result.run.step, "stopped_by_plateau": result.run.stopped,
        "data": result.info,
        "seconds": result.seconds,
        "torch": torch.__version__,
    })
    for name, fig in result.figures().items():
        plotting.save_figure(fig, out / "figures" / name)
