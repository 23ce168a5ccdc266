"""Optuna search over abliteration edits (docs/algorithms.md §14): which direction, which variant,
which per-layer kernel, scored on validation prompts by refusals and first-token KL (optionally
over-refusals), with multi-objective TPE.

- Every trial is evaluated with the edit's hooks (:func:`~refusal_tl.steer.edit.edit_hooks`),
  which equal its weight edit exactly, so no weights are copied or reset between trials.
- The study lives in an Optuna journal file (``RUN/search/journal.log``). Each trial is asked
  with a TPE sampler seeded by (seed, trial number), and a trial left running by a killed search
  is evaluated again with its own parameters on resume: a resumed search ends with the same
  trials as an uninterrupted one (greedy answers, same prompts).
- The methods' own directions (DIM, RDO, the cone, RepInd-1), ablated the standard way, are the
  first trials (enqueued; part of the budget), marked on the front.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import no_type_check

import optuna
import torch
from optuna.storages.journal import JournalFileBackend
from tqdm.auto import tqdm

from refusal_tl import profiles
from refusal_tl.abliterate.sources import Sources, load_sources
from refusal_tl.abliterate.space import SPACE_VERSION, edit_of, reference_params, suggest
from refusal_tl.dim.config import DimConfig
from refusal_tl.dim.run import source
from refusal_tl.errors import RefusalTLError, check_at_least_one, check_choice
from refusal_tl.eval.protocol import protocol
from refusal_tl.io import ensure_dir, json_digest, read_json, write_json
from refusal_tl.model import RefusalModel
from refusal_tl.plotting import pareto_figure, save_figure
from refusal_tl.steer.edit import Edit, edit_hooks
from refusal_tl.steer.forward import kl_to_base, map_last_logits
from refusal_tl.steer.generation import generate

OBJECTIVES = ("refusals", "kl", "over_refusal")


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class SearchConfig:
    """A search: its trials, objectives, validation prompt counts and evaluation protocol."""

    trials: int = 32
    startup_trials: int = 10
    seed: int = 42
    objectives: tuple[str, ...] = ("refusals", "kl")
    n_harmful: int = 32
    n_harmless: int = 32
    n_sensitive: int = 32
    protocol: str = "heretic"
    max_new_tokens: int | None = None  # None: the protocol's (heretic: 100)
    batch_size: int = 32
    profile: str = "cpu"

    def __post_init__(self):
        check_at_least_one(self, "trials", "n_harmful", "n_harmless", "batch_size")
        object.__setattr__(self, "objectives", tuple(self.objectives))
        for o in self.objectives:
            check_choice("objective", o, OBJECTIVES)
        if not {"refusals", "kl"} <= set(self.objectives):
            raise RefusalTLError("the objectives must include refusals and kl (add over_refusal as a third).")
        protocol(self.protocol)

    @classmethod
    def from_profile(cls, name: str, **overrides) -> "SearchConfig":
        return cls(**{**profiles.profile(name, "search"), "profile": name,
                      **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def answer_tokens(self) -> int:
        return self.max_new_tokens or protocol(self.protocol).max_new_tokens or 100

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- scoring


@dataclass
class Scorer:
    """Refusals on harmful validation prompts, first-token KL on harmless ones (and refusals on
    sensitive ones), in the search's protocol; the clean logits computed once."""

    model: RefusalModel
    cfg: SearchConfig
    prompts: dict[str, list[str]]
    base_logits: torch.Tensor | None = None

    def __call__(self, edit: Edit | None) -> dict[str, float]:
        """The objectives: refusal counts and the mean KL."""
        return {k: float(sum(v) / len(v)) if k == "kl" else float(sum(v)) for k, v in self.per_prompt(edit).items()}

    def per_prompt(self, edit: Edit | None) -> dict[str, list[float]]:
        """Per prompt: ``kl`` on harmless, ``refusals`` (0/1) on harmful (and ``over_refusal`` on sensitive)."""
        proto = protocol(self.cfg.protocol)
        judge = proto.make_judge()
        hooks = [] if edit is None else edit_hooks(self.model, edit)
        with self.model.system_prompt(proto.system_prompt):
            if self.base_logits is None:
                self.base_logits = map_last_logits(self.model, self.prompts["harmless"], lambda lg, idx: lg, [],
                                                   self.cfg.batch_size)
            out = {"kl": kl_to_base(self.model, self.prompts["harmless"], self.base_logits, hooks,
                                    self.cfg.batch_size).tolist()}
            for key, kind in (("refusals", "harmful"), ("over_refusal", "sensitive")):
                if key == "over_refusal" and key not in self.cfg.objectives:
                    continue
                answers = generate(self.model, self.prompts[kind], self.cfg.answer_tokens, hooks,
                                   self.cfg.batch_size, desc=None)
                out[key] = [float(x) for x in judge(self.prompts[kind], answers)]
        return out


def search_prompts(run_dir: Path, cfg: SearchConfig) -> dict[str, list[str]]:
    """The run's harmful and harmless validation prompts (as its DIM stage names them) and the bundled
    sensitive ones; unfiltered, as heretic counts them."""
    dim_cfg = DimConfig(**read_json(run_dir / "dim" / "metadata.json", "DIM metadata")["config"])
    return {"harmful": source(dim_cfg.harmful_val, "harmful", "val", cfg.n_harmful),
            "harmless": source(dim_cfg.harmless_val, "harmless", "val", cfg.n_harmless),
            "sensitive": source(None, "sensitive", "val", cfg.n_sensitive)}


# ---------------------------------------------------------------- results


def pareto_front(points: list[dict], keys=("refusals", "kl")) -> list[dict]:
    """The points no other point beats on every key (lower is better), by refusals then KL."""
    dominated = lambda a: any(all(b[k] <= a[k] for k in keys) and any(b[k] < a[k] for k in keys) for b in points)
    return sorted([p for p in points if not dominated(p)], key=lambda p: (p["refusals"], p["kl"]))


def pick(points: list[dict], max_refusals: float | int | None = None) -> dict:
    """The lowest KL among points with at most ``max_refusals`` refusals (default: the fewest any
    point reached): the ``--pick`` rule."""
    if not points:
        raise RefusalTLError("the search has no finished trial yet; run `refusal-tl search` first.")
    target = min(p["refusals"] for p in points) if max_refusals is None else max_refusals
    ok = [p for p in points if p["refusals"] <= target]
    if not ok:
        raise RefusalTLError(f"no trial has at most {target:g} refusals (the fewest: "
                             f"{min(p['refusals'] for p in points):g}); raise --max-refusals.")
    return min(ok, key=lambda p: (p["kl"], p["refusals"]))


@dataclass
class SearchResult:
    """Every finished trial (parameters, objective values, seconds) and the methods' reference points."""

    trials: list[dict]
    defaults: dict[str, dict]
    baseline: dict[str, float]
    config: dict
    n_prompts: dict[str, int]
    seconds: float = 0.0
    out: Path | None = field(default=None, repr=False)

    def front(self) -> list[dict]:
        """The Pareto front of (refusals, KL) (and over-refusals when searched), by refusals."""
        return pareto_front(self.trials, self.config["objectives"])

    def pick(self, max_refusals: float | int | None = None) -> dict:
        """The ``--pick`` rule (:func:`pick`) over the finished trials."""
        return pick(self.trials, max_refusals)

    def trial(self, which: int | str, max_refusals: float | int | None = None) -> dict:
        if which == "best":
            return self.pick(max_refusals)
        for t in self.trials:
            if t["number"] == int(which):
                return t
        raise RefusalTLError(f"no finished trial {which} in the search (trials 0 … {len(self.trials) - 1}).")

    def to_dict(self) -> dict:
        return {"trials": self.trials, "defaults": self.defaults, "baseline": self.baseline, "config": self.config,
                "n_prompts": self.n_prompts, "seconds": self.seconds,
                "seconds_per_trial": self.seconds_per_trial, "front": [t["number"] for t in self.front()]}

    @property
    def seconds_per_trial(self) -> float:
        done = [t["seconds"] for t in self.trials]
        return sum(done) / len(done) if done else float("nan")

    @classmethod
    def load(cls, path: str | Path) -> "SearchResult":
        path = Path(path)
        path = path / "result.json" if path.is_dir() else path
        d = read_json(path, "search result")
        return cls(d["trials"], d["defaults"], d["baseline"], d["config"], d["n_prompts"], d["seconds"], path.parent)

    def figure(self, chosen: dict | None = None):
        return pareto_figure(self, chosen or self.pick())


# ---------------------------------------------------------------- the run


def _storage(out: Path) -> optuna.storages.BaseStorage:
    return optuna.storages.JournalStorage(JournalFileBackend(str(out / "journal.log")))


def _sampler(cfg: SearchConfig, number: int) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(n_startup_trials=cfg.startup_trials, n_ei_candidates=128, multivariate=True,
                                      seed=cfg.seed * 100_003 + number)


def run_search(cfg: SearchConfig, run_dir: str | Path, model: RefusalModel, progress: bool = True) -> SearchResult:
    """Run (or resume) the search of ``run_dir``; results in ``RUN/search/``."""
    run_dir = Path(run_dir)
    out = ensure_dir(run_dir / "search")
    sources = load_sources(run_dir, model)
    prompts = search_prompts(run_dir, cfg)
    key = json_digest({"config": {k: v for k, v in cfg.to_dict().items() if k not in ("trials", "batch_size")},
                       "model": model.key, "prompts": prompts, "kinds": sources.kinds(), "space": SPACE_VERSION})
    config_path = out / "config.json"
    if config_path.is_file() and read_json(config_path, "search config").get("key") != key:
        raise RefusalTLError(f"{out} holds a search with other settings, prompts or directions; pass another "
                             "--run or delete that folder to start again.")
    write_json(config_path, {"key": key, "config": cfg.to_dict(), **model.key})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(out)
    study = optuna.create_study(storage=storage, study_name="refusal_tl", load_if_exists=True,
                                directions=["minimize"] * len(cfg.objectives))
    score = Scorer(model, cfg, prompts)
    start = time.perf_counter()
    baseline = _baseline(out, key, score)
    if not study.trials:  # the methods' standard ablations first (part of the budget)
        for name, params in reference_params(sources, model.n_layers).items():
            study.enqueue_trial(params, user_attrs={"reference": name})
    bar = tqdm(total=cfg.trials, desc="abliteration search", disable=not progress)
    bar.update(sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials))
    for stale in [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]:
        # a killed search's last trial: asked again with its own seed (its stored parameters come back,
        # any it had not drawn yet are drawn as the first run would have), then evaluated
        study.sampler = _sampler(cfg, stale.number)
        _evaluate(optuna.trial.Trial(study, stale._trial_id), score, sources, model, cfg)
        bar.update(1)
    while (n := sum(t.state != optuna.trial.TrialState.WAITING for t in study.trials)) < cfg.trials:
        study.sampler = _sampler(cfg, n)  # an enqueued trial (numbered when enqueued) comes first
        _evaluate(study.ask(), score, sources, model, cfg)
        bar.update(1)
        res = _result(study, cfg, baseline, prompts, out)
        best = res.pick()
        bar.set_postfix(front=len(res.front()), refusals=f"{best['refusals']:g}", kl=f"{best['kl']:.3f}")
    bar.close()
    result = _result(study, cfg, baseline, prompts, out)
    result.seconds = time.perf_counter() - start
    write_json(out / "result.json", result.to_dict())
    save_figure(result.figure(), out / "figures" / "pareto")
    return result


def _evaluate(trial: optuna.Trial, score: Scorer, sources: Sources, model: RefusalModel, cfg: SearchConfig) -> None:
    start = time.perf_counter()
    values = score(edit_of(suggest(trial, sources, model.n_layers), sources, model.n_layers))
    for k, v in {**values, "seconds": time.perf_counter() - start}.items():
        trial.set_user_attr(k, v)
    trial.study.tell(trial, [values[o] for o in cfg.objectives])


def _baseline(out: Path, key: str, score: Scorer) -> dict:
    """The scores without an edit (cached in ``baseline.json``)."""
    path = out / "baseline.json"
    if path.is_file() and (saved := read_json(path, "search baseline")).get("key") == key:
        return saved["baseline"]
    baseline = score(None)
    write_json(path, {"key": key, "baseline": baseline})
    return baseline


def _result(study, cfg, baseline, prompts, out) -> SearchResult:
    trials = [{"number": t.number, "params": t.params, **{k: t.user_attrs[k] for k in t.user_attrs}}
              for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    defaults = {t["reference"]: t for t in trials if "reference" in t}
    return SearchResult(trials, defaults, baseline, cfg.to_dict(), {k: len(v) for k, v in prompts.items()}, out=out)


def trial_edit(result: SearchResult, trial: dict, model: RefusalModel) -> Edit:
    """The edit of a finished trial, rebuilt from the search's run directory (``RUN/search/..``)."""
    if result.out is None:
        raise RefusalTLError("this search result was not loaded from a folder; use SearchResult.load(RUN/search).")
    saved = read_json(result.out / "config.json", "search config")
    if saved.get("weights_sha") not in (None, model.weights_sha):
        raise RefusalTLError(f"the search ran on {saved.get('model')} ({saved.get('dtype')}); load that model "
                             "(--model) to export its trials.")
    return edit_of(trial["params"], load_sources(result.out.parent, model), model.n_layers)
