"""One setup for every notebook: the profile, the model, the run directory and where figures go.

``Session.open()`` reads ``REFUSAL_TL_PROFILE`` (default ``cpu``), ``REFUSAL_TL_MODEL`` (default
``bundled``), ``REFUSAL_TL_RUN_DIR`` and ``REFUSAL_TL_FIG_DIR``. The default run directory is the
one ``make demo`` writes (``runs/demo`` for the cpu profile, ``runs/demo-ci`` for ``PROFILE=ci``,
at the repository root), so after the demo every notebook finds its stages finished and its
evaluations cached: it trains nothing and generates nothing. :meth:`Session.stage` and
:meth:`Session.evaluate` are the calls ``refusal-tl reproduce`` makes (:mod:`refusal_tl.pipeline.stages`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from refusal_tl import plotting, profiles
from refusal_tl.abliterate.search import SearchConfig, run_search
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel, load_model
from refusal_tl.pipeline.cache import Answers
from refusal_tl.pipeline.compare import compare_figures, load_runs
from refusal_tl.pipeline.stages import NEEDS, evaluate_stage, run_stage
from refusal_tl.profiles import EvalSizes


def demo_dir(profile: str, start: Path | None = None) -> Path:
    """``runs/demo`` (cpu) or ``runs/demo-{profile}`` at the repository root above ``start`` (the
    working directory; a notebook runs in ``notebooks/``), else under ``start``."""
    start = (start or Path.cwd()).resolve()
    root = next((p for p in (start, *start.parents) if (p / "refusal_tl").is_dir() and (p / "notebooks").is_dir()),
                start)
    return root / "runs" / ("demo" if profile == "cpu" else f"demo-{profile}")


@dataclass
class Session:
    """What a notebook works with; stages and evaluations are reused from ``run_dir`` when there."""

    profile: str
    model: RefusalModel
    run_dir: Path
    fig_dir: Path
    sizes: EvalSizes
    spec: str = "bundled"
    results: dict = field(default_factory=dict)
    answers: Answers | None = None

    @classmethod
    def open(cls, profile: str | None = None, model: str | None = None, run_dir: str | Path | None = None,
             fig_dir: str | Path | None = None) -> "Session":
        """Arguments first, then the environment, then the defaults (cpu, bundled, the demo's run)."""
        profile = profile or os.environ.get("REFUSAL_TL_PROFILE", "cpu")
        spec = model or os.environ.get("REFUSAL_TL_MODEL", "bundled")
        sizes = EvalSizes.of(profile)  # checks the profile's name, before the model loads
        run = Path(run_dir or os.environ.get("REFUSAL_TL_RUN_DIR") or demo_dir(profile))
        figs = Path(fig_dir or os.environ.get("REFUSAL_TL_FIG_DIR") or run / "figures")
        figs.mkdir(parents=True, exist_ok=True)
        loaded = load_model(spec)
        loaded.bridge.reset_hooks()
        return cls(profile, loaded, run, figs, sizes, spec, answers=Answers(loaded, sizes.max_new_tokens))

    @property
    def trained(self) -> bool:
        """Whether this profile trains long enough for the paper's claims about *trained* directions
        (RDO's jailbreak, a cone's share of bypassing samples, RepInd's independence). The ``ci``
        profile trains a step or two per stage: it shows that every stage runs, and the notebooks
        check those claims only at the ``cpu`` and ``paper`` sizes."""
        return self.profile != "ci"

    def describe(self) -> str:
        return f"{profiles.describe(self.profile)}\nrun directory: {self.run_dir}; figures: {self.fig_dir}"

    def stage(self, name: str):
        """The result of stage ``name`` (and of the stages it reads): reused, resumed or run."""
        for need in (*NEEDS[name], name):
            if need not in self.results:
                self.results[need] = run_stage(need, self.profile, self.run_dir, self.model, self.results,
                                               spec=self.spec)
        return self.results[name]

    def evaluate(self, name: str) -> dict:
        """The held-out evaluations shown with stage ``name`` (as in ``report.html``), cached in
        ``RUN/eval``. The results table comes first (its answers are reused); it compares DIM and,
        when the run directory has one, RDO."""
        self.stage(name)
        if "rdo" not in self.results and (self.run_dir / "rdo" / "direction.safetensors").is_file():
            self.stage("rdo")  # reused from disk: the same table as the report's
        table = evaluate_stage("rdo" if "rdo" in self.results else "dim", self.results, self.model, self.run_dir,
                               self.sizes, self.answers)
        if name in ("dim", "rdo"):
            return table
        return evaluate_stage(name, self.results, self.model, self.run_dir, self.sizes, self.answers)

    def direction(self, name: str) -> RefusalDirection:
        """``"DIM"``, ``"RDO"``, ``"RDO⊥"`` or ``"RepInd-k"`` of this run."""
        if name in ("DIM", "RDO"):
            return self.stage(name.lower()).direction
        ind = self.stage("repind")
        return ind.perp.direction if name == "RDO⊥" else ind.repind.directions[int(name.split("-")[1]) - 1]

    def search(self, trials: int | None = None, **overrides):
        """``refusal-tl search`` on this run (its directions trained or reused first): the profile's
        trials, or ``trials``; resumed from ``RUN/search`` when there."""
        for stage in ("dim", "rdo", "cone", "repind"):
            self.stage(stage)
        cfg = SearchConfig.from_profile(self.profile, trials=trials, **overrides)
        return run_search(cfg, self.run_dir, self.model)

    def across_runs(self, runs: list[str | Path] | None = None) -> dict[str, go.Figure]:
        """Figs. 2, 10 and 3/4 across this run and ``runs`` (default: the run directories listed in
        ``REFUSAL_TL_COMPARE_RUNS``, separated by ``:``), one colour per run; empty without other runs."""
        listed = os.environ.get("REFUSAL_TL_COMPARE_RUNS", "")
        others = runs if runs is not None else [p for p in listed.split(":") if p]
        if not others:
            return {}
        return compare_figures(load_runs([self.run_dir, *others]))

    def save(self, fig: go.Figure, name: str, png: bool = False) -> go.Figure:
        """Write ``fig`` to ``fig_dir/name.html`` (and ``.png``) and return it, for display."""
        plotting.save_figure(fig, self.fig_dir / name, png=png)
        return fig
