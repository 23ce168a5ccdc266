"""The paper's stages as one table: each stage's config from a profile, how it runs in a run
directory, and which held-out evaluations belong to it. ``refusal-tl reproduce`` and the
notebooks (:class:`~refusal_tl.pipeline.session.Session`) both go through here, so a notebook
opened after ``make demo`` builds the same configs, finds every stage finished and reads every
evaluation from ``RUN/eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from refusal_tl import data, profiles
from refusal_tl.cone import ConeRunConfig, run_cone
from refusal_tl.dim import DimConfig, run_dim
from refusal_tl.gcg import GcgConfig, run_gcg_pair
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.pipeline.cache import Answers
from refusal_tl.pipeline.suite import evaluate_cones, evaluate_gcg, evaluate_methods, evaluate_repind
from refusal_tl.profiles import EvalSizes
from refusal_tl.rdo import RdoRunConfig, run_rdo
from refusal_tl.repind import RepIndRunConfig, run_independence

STAGES = profiles.STAGES
NEEDS = {"dim": (), "rdo": ("dim",), "cone": ("dim", "rdo"), "repind": ("dim",), "gcg": ("dim", "repind")}
CONFIGS = {"dim": DimConfig, "rdo": RdoRunConfig, "cone": ConeRunConfig, "repind": RepIndRunConfig,
           "gcg": GcgConfig}


def plan(stages) -> list[str]:
    """``stages`` plus the stages they read, in the paper's order."""
    want = set(stages)
    for s in stages:
        want.update(NEEDS[s])
    return [s for s in STAGES if s in want]


def stage_config(stage: str, profile: str, model: str = "bundled", overrides: dict | None = None):
    """``stage``'s config: the profile's settings, then ``overrides`` (its config's keyword arguments)."""
    return CONFIGS[stage].from_profile(profile, model=model, **(overrides or {}))


def run_stage(stage: str, profile: str, run_dir: str | Path, model: RefusalModel, done: dict,
              overrides: dict | None = None, progress: bool = True, spec: str = "bundled"):
    """Run (or reuse, or resume) ``stage`` in ``run_dir``; ``done`` holds the results of the stages it
    reads, ``overrides`` maps a stage to its config's keyword arguments, ``spec`` is how the model was
    named when loaded (recorded in the configs)."""
    overrides = overrides or {}
    cfg = stage_config(stage, profile, spec, overrides.get(stage))
    return RUNNERS[stage](cfg, profile, Path(run_dir), model, done, overrides, progress)


def _dim(cfg, profile, run_dir, model, done, overrides, progress):
    return run_dim(cfg, run_dir, model)


def _rdo(cfg, profile, run_dir, model, done, overrides, progress):
    return run_rdo(cfg, run_dir, model, progress=progress)


def _cone(cfg, profile, run_dir, model, done, overrides, progress):
    return run_cone(cfg, run_dir, model, progress=progress)


def _repind(cfg, profile, run_dir, model, done, overrides, progress):
    """RDO⊥ (the RDO stage's settings, held orthogonal to DIM) and RepInd-1 … K."""
    rdo = stage_config("rdo", profile, cfg.model, overrides.get("rdo"))
    return run_independence(rdo, cfg, run_dir, model, progress)


def _gcg(cfg, profile, run_dir, model, done, overrides, progress):
    """GCG on the profile's first test prompts, with the RepInd-1 term and without (plain GCG)."""
    prompts = data.bundled("harmful", "test", cfg.n_prompts)
    return run_gcg_pair(cfg, model, done["repind"].repind.directions[0], done["dim"].direction, prompts, run_dir,
                        progress)


RUNNERS: dict[str, Callable] = {"dim": _dim, "rdo": _rdo, "cone": _cone, "repind": _repind, "gcg": _gcg}


def directions(results: dict) -> dict[str, RefusalDirection]:
    """The single directions the results table compares: DIM and, when the run has it, RDO."""
    return {name: results[k].direction for name, k in (("DIM", "dim"), ("RDO", "rdo")) if k in results}


def evaluate_stage(stage: str, results: dict, model: RefusalModel, run_dir, s: EvalSizes, answers: Answers) -> dict:
    """The held-out evaluations shown with ``stage`` (each cached in ``RUN/eval``): the results table
    and the α sweep with DIM and RDO, the cone samples, Figs. 6–8, GCG's baseline."""
    dirs = directions(results)
    if stage in ("dim", "rdo"):
        return evaluate_methods(model, dirs, s, run_dir, answers, results.get("rdo"))
    if stage == "cone":
        return evaluate_cones(model, results["cone"].cones, dirs, s, run_dir, answers)
    if stage == "repind":
        ind = results["repind"]
        return evaluate_repind(model, dirs["DIM"], ind.perp.direction, ind.repind.directions, s, run_dir, answers)
    return evaluate_gcg(model, [r.prompt for r in results["gcg"].aux], run_dir, answers)


def evaluate_run(results: dict, model: RefusalModel, run_dir, s: EvalSizes) -> dict[str, dict]:
    """Every evaluation the report draws for the stages in ``results``, on the bundled held-out
    prompts with the sizes ``s``; the results table first, whose answers the later sections reuse."""
    answers, out = Answers(model, s.max_new_tokens), {}
    for stage in STAGES:  # DIM's and RDO's evaluations are the same table: made once
        if stage in results and not (stage == "dim" and "rdo" in results):
            out |= evaluate_stage(stage, results, model, run_dir, s, answers)
    return out
