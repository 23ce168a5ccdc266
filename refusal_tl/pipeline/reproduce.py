"""One command from model to results: every stage of the paper in order, in one run directory.

``reproduce(ReproduceConfig(...), RUN)`` runs DIM → RDO → cones → RDO⊥ + RepInd → GCG with one
profile (:mod:`refusal_tl.pipeline.stages`). Each stage reuses what the run directory already
holds when its key matches (the model's weights and dtype, prompts and config; a changed setting
recomputes only that stage and what reads it) and resumes from its own checkpoints after an
interrupt. Wall time and peak memory of every stage go to ``RUN/timings.json``, written after each
stage (atomically), so an interrupted reproduction still says what it spent. Then the ``evaluate``
step generates on held-out prompts for the figures of notebooks 01–05 and the Table-5-shaped
results table (:func:`refusal_tl.pipeline.stages.evaluate_run`, the profile's evaluation sizes,
cached in ``RUN/eval``), and ``RUN/report.html`` gathers everything (:mod:`refusal_tl.pipeline.report`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import no_type_check

from tqdm.auto import tqdm

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError, check_choice, check_literals
from refusal_tl.io import ensure_dir, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.model.load import DtypeName
from refusal_tl.pipeline.memory import PeakMemory
from refusal_tl.pipeline.report import search_section, stage_configs, stage_sections, write_report
from refusal_tl.pipeline.stages import STAGES, evaluate_run, plan, run_stage
from refusal_tl.profiles import EvalSizes


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class ReproduceConfig:
    """Which model, profile and stages; ``overrides`` maps a stage to its config's keyword
    arguments (e.g. ``{"rdo": {"n_train": 16}}``; ``"eval"``: :class:`~refusal_tl.profiles.EvalSizes`
    fields), applied on top of the profile."""

    model: str = "bundled"
    profile: profiles.Profile = "cpu"
    stages: tuple[str, ...] = STAGES
    overrides: dict = field(default_factory=dict)
    evaluate: bool = True  # generate on held-out prompts for the report's figures (the profile's ``eval`` sizes)
    dtype: DtypeName = "auto"  # of the model loaded when none is passed (auto: bf16 where native, else float32)

    def __post_init__(self):
        check_literals(self)
        for s in self.stages:
            check_choice("stage", s, STAGES)
        for s in self.overrides:
            check_choice("stage", s, STAGES + ("eval",))
        if not self.stages:
            raise RefusalTLError(f"no stages to run: choose some of {', '.join(STAGES)}.")
        self.sizes()  # an unknown evaluation size fails here, before any model loads

    def plan(self) -> list[str]:
        """The requested stages plus the stages they read, in the paper's order."""
        return plan(self.stages)

    def sizes(self) -> EvalSizes:
        return EvalSizes.of(self.profile, **self.overrides.get("eval", {}))


@dataclass
class ReproduceResult:
    run_dir: Path
    results: dict = field(default_factory=dict)  # stage -> its result object
    evaluations: dict = field(default_factory=dict)  # name -> data of refusal_tl.pipeline.suite
    timings: dict = field(default_factory=dict)  # stage -> {"seconds", "peak_rss_gb", ...}


def reproduce(cfg: ReproduceConfig, run_dir: str | Path, model: RefusalModel | None = None,
              progress: bool = True, load_seconds: float | None = None) -> ReproduceResult:
    """Run ``cfg.plan()`` in ``run_dir``; see the module docstring. ``load_seconds``: how long
    loading a ``model`` passed in took (the CLI loads it first), for ``timings.json``."""
    run_dir = ensure_dir(run_dir)
    res = ReproduceResult(run_dir)
    path = run_dir / "timings.json"
    t0 = time.perf_counter()
    model = model or load_model(cfg.model, dtype=cfg.dtype)
    loaded = time.perf_counter() - t0 if load_seconds is None else load_seconds
    res.timings["load"] = {"seconds": round(loaded, 2)}
    for stage in tqdm(cfg.plan() + (["evaluate"] if cfg.evaluate else []), desc="reproduce", disable=not progress):
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            if stage == "evaluate":
                res.evaluations = evaluate_run(res.results, model, run_dir, cfg.sizes())
            else:
                res.results[stage] = run_stage(stage, cfg.profile, run_dir, model, res.results, cfg.overrides,
                                               progress, cfg.model)
            seconds = time.perf_counter() - t0
        res.timings[stage] = {"seconds": round(seconds, 2), **mem.summary()}
        write_json(path, {**model.key, "config": asdict(cfg), "stages": res.timings})
    report(res, cfg, model)
    return res


def report(res: ReproduceResult, cfg: ReproduceConfig, model: RefusalModel) -> Path:
    """Write ``RUN/report.html`` from the stages' results."""
    meta = {**model.key, "reproduce": asdict(cfg), "stages": stage_configs(res.results), "timings": res.timings}
    if cfg.evaluate:
        meta["evaluation"] = cfg.sizes().to_dict()
    return write_report(res.run_dir / "report.html",
                        stage_sections(res.results, res.evaluations) + search_section(res.run_dir),
                        f"refusal_tl reproduction: {model.name}, {cfg.profile} profile", meta)
