"""One command from model to results: every stage of the paper in order, in one run directory.

``reproduce(ReproduceConfig(...), RUN)`` runs DIM → RDO → cones → RDO⊥ + RepInd → GCG with one
profile. Each stage reuses what the run directory already holds when its key matches (model
weights' sha, prompts and config; a changed setting recomputes only that stage and what reads
it) and resumes from its own checkpoints after an interrupt. Wall time and peak memory of
every stage go to ``RUN/timings.json``, written after each stage (atomically), so an
interrupted reproduction still says what it spent. Then the ``evaluate`` step generates on
held-out prompts for the figures of notebooks 01–05 and the Table-5-shaped results table
(:func:`refusal_tl.eval.suite.evaluate_run`, the profile's ``report`` sizes, cached in
``RUN/eval``), and ``RUN/report.html`` gathers everything (:mod:`refusal_tl.report`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from refusal_tl import data, profiles
from refusal_tl.errors import RefusalTLError, check_choice
from refusal_tl.io import ensure_dir, write_json
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.model.load import DTYPE_CHOICES

STAGES = profiles.STAGES
NEEDS = {"dim": (), "rdo": ("dim",), "cone": ("dim", "rdo"), "repind": ("dim",), "gcg": ("dim", "repind")}


@dataclass(frozen=True)
class ReproduceConfig:
    """Which model, profile and stages; ``overrides`` maps a stage to its config's keyword
    arguments (e.g. ``{"rdo": {"n_train": 16}}``; ``"report"``: the evaluation sizes), applied on top
    of the profile."""

    model: str = "bundled"
    profile: str = "cpu"
    stages: tuple[str, ...] = STAGES
    overrides: dict = field(default_factory=dict)
    evaluate: bool = True  # generate on held-out prompts for the report's figures (profile key ``report``)
    dtype: str = "auto"  # of the model loaded when none is passed (auto: bf16 where native, else float32)

    def __post_init__(self):
        check_choice("profile", self.profile, profiles.NAMES)
        check_choice("dtype", self.dtype, DTYPE_CHOICES)
        for s in self.stages:
            check_choice("stage", s, STAGES)
        for s in self.overrides:
            check_choice("stage", s, STAGES + ("report",))
        if not self.stages:
            raise RefusalTLError(f"no stages to run: choose some of {', '.join(STAGES)}.")

    def plan(self) -> list[str]:
        """The requested stages plus the stages they read, in the paper's order."""
        want = set(self.stages)
        for s in self.stages:
            want.update(NEEDS[s])
        return [s for s in STAGES if s in want]


@dataclass
class ReproduceResult:
    run_dir: Path
    results: dict = field(default_factory=dict)  # stage -> its result object
    evaluations: dict = field(default_factory=dict)  # name -> data of refusal_tl.eval.suite
    timings: dict = field(default_factory=dict)  # stage -> {"seconds", "peak_rss_gb", ...}


class PeakMemory:
    """Peak resident memory (and CUDA memory) of this process while the block runs.

    On Linux the kernel's high-water mark is exact: it is reset on entry (``/proc/self/clear_refs``)
    and read on exit (``VmHWM``). Elsewhere a thread samples the resident size every ``interval``
    seconds (it can miss a short spike made while a C call holds the GIL).
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _rss(self) -> int:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._kernel = _reset_high_water_mark()
        self.peak = self._rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss(), _high_water_mark() if self._kernel else 0)
        return False

    def summary(self) -> dict:
        out = {"peak_rss_gb": round(self.peak / 2**30, 3)}
        if torch.cuda.is_available():
            out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        return out


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _high_water_mark() -> int:
    """VmHWM of this process in bytes (Linux), 0 if unreadable."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return 0


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
    plan = cfg.plan() + (["evaluate"] if cfg.evaluate else [])
    for stage in tqdm(plan, desc="reproduce", disable=not progress):
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            if stage == "evaluate":
                res.evaluations = _evaluate(cfg, run_dir, model, res.results)
            else:
                res.results[stage] = RUNNERS[stage](cfg, run_dir, model, res.results, progress)
            seconds = time.perf_counter() - t0
        res.timings[stage] = {"seconds": round(seconds, 2), **mem.summary()}
        write_json(path, {**model.key, "config": asdict(cfg),
                          "stages": res.timings})
    report(res, cfg, model)
    return res


def _evaluate(cfg: ReproduceConfig, run_dir: Path, model: RefusalModel, results: dict) -> dict:
    """The report's evaluations (cached in ``RUN/eval``), with the profile's ``report`` sizes."""
    from refusal_tl.eval.suite import evaluate_run

    return evaluate_run(results, model, run_dir, _report_sizes(cfg))


def _report_sizes(cfg: ReproduceConfig) -> dict:
    return profiles.profile(cfg.profile, "report") | _kw(cfg, "report")


def report(res: ReproduceResult, cfg: ReproduceConfig, model: RefusalModel) -> Path:
    """Write ``RUN/report.html`` from the stages' results."""
    from refusal_tl.report import stage_configs, stage_sections, write_report

    meta = {**model.key, "reproduce": asdict(cfg),
            "stages": stage_configs(res.results), "timings": res.timings}
    if cfg.evaluate:
        meta["evaluation"] = _report_sizes(cfg)
    return write_report(res.run_dir / "report.html", stage_sections(res.results, res.evaluations),
                        f"refusal_tl reproduction: {model.name}, {cfg.profile} profile", meta)


def _kw(cfg: ReproduceConfig, stage: str) -> dict:
    return dict(cfg.overrides.get(stage, {}))


def _dim(cfg, run_dir, model, done, progress):
    from refusal_tl.dim import DimConfig, run_dim

    return run_dim(DimConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "dim")), run_dir, model)


def _rdo(cfg, run_dir, model, done, progress):
    from refusal_tl.rdo import RdoRunConfig, run_rdo

    return run_rdo(RdoRunConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "rdo")), run_dir, model,
                   progress=progress)


def _cone(cfg, run_dir, model, done, progress):
    from refusal_tl.cone import ConeRunConfig, run_cone

    return run_cone(ConeRunConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "cone")), run_dir, model,
                    progress=progress)


def _repind(cfg, run_dir, model, done, progress):
    """RDO⊥ (the reference of Fig. 6) and RepInd-1 … K."""
    from refusal_tl.rdo import RdoRunConfig, run_rdo
    from refusal_tl.repind import RepIndRunConfig, run_repind

    dim = done["dim"].direction
    perp = run_rdo(RdoRunConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "rdo")), run_dir, model,
                   name="rdo-perp", orthogonal_to=[dim], progress=progress)
    rep = run_repind(RepIndRunConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "repind")), run_dir,
                     model, progress=progress)
    return {"rdo-perp": perp, "repind": rep}


def _gcg(cfg, run_dir, model, done, progress):
    """GCG on the profile's first test prompts, with the RepInd-1 term and without (plain GCG)."""
    from dataclasses import replace

    from refusal_tl.gcg import GcgConfig, run_gcg

    gcg = GcgConfig.from_profile(cfg.profile, model=cfg.model, **_kw(cfg, "gcg"))
    dim, rep1 = done["dim"].direction, done["repind"]["repind"].directions[0]
    prompts = data.bundled("harmful", "test", gcg.n_prompts)
    return {"aux": run_gcg(gcg, model, rep1, dim, prompts, run_dir / "gcg-aux", progress),
            "plain": run_gcg(replace(gcg, aux_weight=0.0), model, rep1, dim, prompts, run_dir / "gcg-plain", progress)}


RUNNERS: dict[str, Callable] = {"dim": _dim, "rdo": _rdo, "cone": _cone, "repind": _repind, "gcg": _gcg}
