"""The one profile table: how big each stage runs (``ci``, ``cpu``, ``paper``).

Every entry point reads it: the configs' ``from_profile``, the CLI's ``--profile``, the
notebooks' sizes and the benchmarks. ``describe(profile)`` says in words what each stage
trains on and how many optimizer steps that gives.

- ``ci``: the smallest run that still exercises every stage on the bundled model (CI, tests; its
  cone has 2 dimensions, growing to 3 is tested on the tiny model).
- ``cpu``: the bundled 0.5B model on a 2-core laptop (measured costs in the README).
- ``paper``: the paper's text and Table 3 wherever they say something (docs/algorithms.md §12);
  the public train sets by name when the Hugging Face Hub is reachable (SALAD-Bench and Alpaca),
  else the bundled splits.
- ``official``: ``paper`` with the official code's defaults where they differ (:data:`DIFFERENCES`).

**What the ``paper`` RDO profile trains on.** One epoch of steps of 16 pairs. On the
bundled prompts (192 train prompts per class; the bundled model refuses about a third of
the harmful ones) that leaves about 64 pairs, i.e. **about 4 optimizer steps**, so the
plateau rule never fires. The authors' run uses SALAD-Bench's 1,184 harmful train prompts:
after filtering about 1,100 pairs, **about 70 steps**. The ``cpu`` profile therefore runs 6
epochs of the bundled pairs (24 steps) instead.

The ``cone`` stage: dimensions, samples per example and the selection filters' sizes
(docs/algorithms.md §6). The ``repind`` stage: how many directions (``k``), random starts per
direction and the official loss settings (docs/algorithms.md §8). The ``gcg`` stage: steps,
search width, top-k and how many prompts (docs/algorithms.md §9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal, get_args, no_type_check

from refusal_tl.errors import RefusalTLError, check_choice

# The stages of `refusal-tl reproduce`, in the paper's order (each reads the ones before it).
STAGES = ("dim", "rdo", "cone", "repind", "gcg")

# RDO's loss weights λ_abl, λ_add, λ_ret (paper Algorithm 1): written once, here.
RDO_WEIGHTS = {"abl": 1.0, "add": 0.2, "ret": 1.0}

# Fig. 15's retain weights λ_ret: one RDO direction each (notebook 02 and the paper profile's report).
RETAIN_LAMBDAS = (0.0, 0.1, 0.3, 1.0, 3.0)

# Fig. 14's λ_abl (λ_add = 1 − λ_abl), 0 to 1 in steps of 0.1, and its seeds (mean ± SEM).
ABL_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
ABL_SEEDS = (42, 43, 44)

# The paper's capability benchmarks (Table 4), run with lm-eval by `refusal-tl bench`.
BENCH_TASKS = ("truthfulqa_mc2", "arc_challenge", "mmlu", "gsm8k")

# Public train/val sets by name (refusal_tl.data.load_source), used by the paper profile.
PAPER_SOURCES = dict(harmful_train="hub:salad:train", harmless_train="hub:alpaca:train",
                     harmful_val="hub:salad:val", harmless_val="hub:alpaca:val")

PROFILES: dict[str, dict[str, dict]] = {
    "ci": {
        # the last post-instruction position only (the one the cpu and paper runs pick on the bundled model)
        "dim": dict(n_train=24, n_val=16, n_val_harmless=None, batch_size=8, score_late_layers=False, prune=True,
                    positions=(-1,)),
        # 48 prompts per class -> about 16 pairs -> 2 steps of 8
        "rdo": dict(n_train=48, refusal_targets="refusing", accumulation=8, epochs=1, retain_kl="code"),
        # dimension 2 only (growing to 3 is tested on the tiny model), the RDO pairs, 2 steps of 8, one
        # fresh sample per example (after one step, or with steps of 4, the lowest-loss basis fails the KL
        # filter on the bundled model)
        "cone": dict(dims=(2,), n_train=48, refusal_targets="refusing", accumulation=8, epochs=1, max_steps=None,
                     retain_kl="code", n_samples=1, init="rdo", filter_samples=4, n_val=8),
        # the RDO pairs, 2 steps of 4 per direction, 2 directions of 1 candidate
        "repind": dict(k=2, candidates=1, n_train=48, refusal_targets="refusing", accumulation=4, epochs=1,
                       max_steps=2, retain_kl="code", weights={"ret": 0.1}, n_val=8),
        # 2 prompts, 2 steps of 16 candidates, 16-token answers: exercises the loop, not an attack
        "gcg": dict(steps=2, search_width=16, topk=32, n_prompts=2, eval_batch=16, max_new_tokens=16),
        # the held-out evaluation of the report and the notebooks (EvalSizes): 16-token answers (the
        # substring judge's phrases come early), α sweeps on 4 prompts per set, 4 cone samples
        "eval": dict(n_eval=8, n_capability=4, max_new_tokens=16, n_sweep=4, n_alphas=2, n_cone_samples=4,
                     n_cone_eval=4, n_cone_alphas=2, n_trace=8, bon_temperatures=(1.0,), answer_lengths=(16, 32),
                     judge_agreement=False, asr_sets=()),
    },
    "cpu": {
        "dim": dict(n_train=128, n_val=48, n_val_harmless=32, batch_size=16, score_late_layers=False, prune=True),
        # all 192 bundled prompts per class -> 64 pairs -> 4 steps of 16 per epoch, 6 epochs = 24 steps
        "rdo": dict(n_train=None, refusal_targets="refusing", accumulation=16, epochs=6, retain_kl="code"),
        # 64 pairs -> 12 steps of 8 per dimension (1.5 epochs), one fresh sample per example, started
        # from RDO and DIM (README: cost of training and selection)
        "cone": dict(dims=(2, 3), n_train=None, refusal_targets="refusing", accumulation=8, epochs=2,
                     max_steps=12, retain_kl="code", n_samples=1, init="rdo", filter_samples=16, n_val=12),
        # official repind_iterative settings (2 epochs, λ_ret 0.1, λ_ind 200): 64 pairs -> 8 steps of 16
        "repind": dict(k=2, candidates=1, n_train=None, refusal_targets="refusing", accumulation=16, epochs=2,
                       retain_kl="code", weights={"ret": 0.1}, n_val=24),
        # a few prompts, tens of steps, a search width sized for 2 cores
        "gcg": dict(steps=20, search_width=32, topk=128, n_prompts=3, eval_batch=32, max_new_tokens=32),
        # the held-out evaluation of the report and the notebooks (EvalSizes). lm-eval (bench_tasks) needs
        # the Hub and hours of CPU for a 0.5B model: off, the proxy stands in. retain_lambdas (Fig. 15)
        # trains one RDO per λ_ret: the paper profile only (notebook 02 draws it on request)
        "eval": dict(n_eval=24, n_capability=12, max_new_tokens=32, n_sweep=8, n_alphas=4, n_cone_samples=16,
                     n_cone_eval=12, n_cone_alphas=4, n_trace=16, bon_temperatures=(1.0,),
                     answer_lengths=(32, 64, 128, 256)),
    },
    "paper": {
        "dim": dict(n_train=None, n_val=None, n_val_harmless=None, batch_size=32, score_late_layers=True, prune=False,
                    **PAPER_SOURCES),
        # SALAD: ~1,100 pairs -> ~70 steps of 16 (bundled fallback: ~64 pairs -> ~4 steps)
        # the paper's selection: Arditi's filters over the last 20 saved directions (App. B)
        "rdo": dict(n_train=None, refusal_targets="all", accumulation=16, epochs=1, retain_kl="paper",
                    selection="last20",
                    harmful_train=PAPER_SOURCES["harmful_train"], harmless_train=PAPER_SOURCES["harmless_train"]),
        # Algorithm 2: 16 fresh samples per accumulation step, dims 2..5 from random, 64 fixed filter
        # samples, the last 20 bases through the filters
        "cone": dict(dims=(2, 3, 4, 5), n_train=None, refusal_targets="all", accumulation=16, epochs=1,
                     max_steps=None, retain_kl="paper", n_samples=16, init="random", filter_samples=64, n_val=None,
                     selection="last20",
                     harmful_train=PAPER_SOURCES["harmful_train"], harmless_train=PAPER_SOURCES["harmless_train"]),
        # RepInd-1 ... RepInd-5, 5 random starts each, Table 3's λ_ret = 1.0, L_ind averaged over tokens (App. A)
        "repind": dict(k=5, candidates=5, n_train=None, refusal_targets="all", accumulation=16, epochs=2,
                       retain_kl="paper", weights={"ret": 1.0}, tokens="all", n_val=None,
                       harmful_train=PAPER_SOURCES["harmful_train"], harmless_train=PAPER_SOURCES["harmless_train"]),
        # the paper (docs/algorithms.md §9): 250 steps, nanoGCG defaults (width 512, top-k 256), 512-token answers
        "gcg": dict(steps=250, search_width=512, topk=256, n_prompts=None, eval_batch=128, max_new_tokens=512),
        # the paper's sizes (lm-eval on every document of its four tasks; one RDO per λ_ret for Fig. 15)
        "eval": dict(n_eval=128, n_capability=128, max_new_tokens=512, n_sweep=128, n_alphas=16,
                     n_cone_samples=256, n_cone_eval=128, n_cone_alphas=10, n_trace=128,
                     bon_temperatures=(0.2, 0.5, 1.0, 1.2), bench_tasks=BENCH_TASKS, bench_limit=None,
                     retain_lambdas=RETAIN_LAMBDAS, retain_epochs=1, answer_lengths=(64, 128, 256, 512),
                     abl_lambdas=ABL_LAMBDAS, abl_seeds=ABL_SEEDS,
                     gsm8k_filter="flexible-extract"),
    },
}

# `refusal-tl search` (docs/algorithms.md §14): trials, TPE start-up trials, validation prompts per set,
# answers in heretic's protocol (100 tokens); ci: a handful of trials on short answers
SEARCH = {
    "ci": dict(trials=6, startup_trials=2, n_harmful=8, n_harmless=8, n_sensitive=8, max_new_tokens=16,
               batch_size=8),
    "cpu": dict(trials=32, startup_trials=10, n_harmful=32, n_harmless=32, n_sensitive=32, max_new_tokens=None,
                batch_size=32),
    # heretic 1.4's defaults: 200 trials, 60 random start-up trials, 100 prompts per set
    "paper": dict(trials=200, startup_trials=60, n_harmful=100, n_harmless=100, n_sensitive=100,
                  max_new_tokens=None, batch_size=64),
}
for _name, _settings in SEARCH.items():
    PROFILES[_name]["search"] = _settings

# Where the official code's defaults differ from the paper's text: (stage, key, paper, official, source).
# ``official`` is ``paper`` with these values (docs/algorithms.md §12 lists them; tests check each).
DIFFERENCES: tuple[tuple[str, str, object, object, str], ...] = (
    ("rdo", "selection", "last20", "lowest_loss",
     "paper App. B (Arditi's filters on the last 20 directions) vs run_rdo_pipeline.py (one candidate: lowest loss)"),
    ("rdo", "retain_kl", "paper", "code",
     "paper Eq. for L_ret (KL(clean ‖ ablated) averaged over the window) vs rdo.py (reversed, summed)"),
    ("cone", "selection", "last20", "lowest_loss", "paper App. B vs rdo.py's cone run (lowest-loss basis)"),
    ("cone", "n_samples", 16, 8, "paper Algorithm 2 / §5 (16 samples per step) vs rdo.py --n_sample default 8"),
    ("cone", "dims", (2, 3, 4, 5), (2, 3), "paper Figs. 3/17 (cones beyond dimension 3) vs rdo.py "
                                           "--min/--max_cone_dim defaults 2…3"),
    ("cone", "retain_kl", "paper", "code", "as for RDO"),
    ("repind", "weights", {"ret": 1.0}, {"ret": 0.1}, "paper Table 3 (λ_ret 1.0) vs the repind_iterative run (0.1)"),
    ("repind", "candidates", 5, 1, "paper §6 (5 random starts per direction) vs rdo.py defaults (inits=1)"),
    ("repind", "retain_kl", "paper", "code", "as for RDO"),
    ("repind", "tokens", "all", "last", "paper App. A (L_ind averaged over tokens) vs §6 and rdo.py's "
                                        "repind_rdo (last token)"),
    ("eval", "gsm8k_filter", "flexible-extract", "strict-match",
     "paper Table 4 (GSM8K flexible-extract) vs lm-eval's first metric; the official code runs no lm-eval"),
)


def _official() -> dict[str, dict]:
    out = {stage: dict(settings) for stage, settings in PROFILES["paper"].items()}
    for stage, key, _, official, _ in DIFFERENCES:
        out[stage][key] = official
    return out


PROFILES["official"] = _official()
Profile = Literal["ci", "cpu", "paper", "official"]
NAMES: tuple[str, ...] = get_args(Profile)
assert NAMES == tuple(PROFILES), "the Profile literal names every profile of the table"


def profile(name: str, stage: str) -> dict:
    """The settings of ``stage`` (``dim``, ``rdo``, ``cone``, ``repind``, ``gcg``, ``eval``) of profile ``name``."""
    check_choice("profile", name, NAMES)
    return dict(PROFILES[name][stage])


@no_type_check  # __post_init__ validates (lists become tuples), with errors that name the fix
@dataclass(frozen=True)
class EvalSizes:
    """How big the held-out evaluation behind ``report.html`` and the notebooks is (a profile's
    ``eval`` entry; the same sizes for both, so a notebook reads what ``reproduce`` cached)."""

    n_eval: int  # harmful and harmless test prompts per set (Table 5, Figs. 2, 7, 8, 10)
    n_capability: int  # harmless prompts of the offline capability proxy
    max_new_tokens: int  # greedy tokens per answer
    n_sweep: int  # prompts per set of the α sweeps (Figs. 20, 22)
    n_alphas: int  # α values of Fig. 22
    n_cone_samples: int  # sampled directions per cone (Figs. 3, 18, 5/19)
    n_cone_eval: int  # prompts per set for the cone samples
    n_cone_alphas: int  # α values of Fig. 20
    n_trace: int  # prompts of the cosine traces (Figs. 6, 9) and the interference matrix
    bon_temperatures: tuple[float, ...] = ()  # Fig. 5's temperature-sampling baselines
    bench_tasks: tuple[str, ...] | None = None  # lm-eval tasks (Table 4); None: the offline proxy only
    bench_limit: int | None = None  # lm-eval documents per task (None: all)
    bench_tasks_dir: str | None = None  # a folder of extra lm-eval task YAMLs
    retain_lambdas: tuple[float, ...] | None = None  # Fig. 15: one RDO per λ_ret
    retain_epochs: int | None = None  # epochs of each of those runs (None: the profile's)
    abl_lambdas: tuple[float, ...] | None = None  # Fig. 14: one RDO per λ_abl (λ_add = 1 − λ_abl) and seed
    abl_seeds: tuple[int, ...] = (42,)  # Fig. 14's seeds (the paper: mean ± SEM over runs)
    answer_lengths: tuple[int, ...] = ()  # the answer-length curve's cuts (new tokens); () skips it
    gsm8k_filter: str = "strict-match"  # lm-eval's GSM8K answer extraction shown in Table 4 (paper: flexible)
    protocols: tuple[str, ...] = ("heretic",)  # Table 5 also in these protocols' units (eval/protocol.py)
    judge_agreement: bool = True  # the judges against the hand-labelled set (a repository checkout only)
    asr_sets: tuple[str, ...] = ("strongreject", "sorrybench", "jailbreakbench")  # Figs. 11–13 (offline: bundled)

    def __post_init__(self):
        for f in fields(self)[:9]:
            if not (isinstance(getattr(self, f.name), int) and getattr(self, f.name) > 0):
                raise RefusalTLError(f"evaluation size {f.name} must be a positive integer, got "
                                     f"{getattr(self, f.name)!r}.")
        for name in ("bon_temperatures", "bench_tasks", "retain_lambdas", "answer_lengths", "protocols", "abl_lambdas",
                     "abl_seeds", "asr_sets"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def of(cls, profile_name: str, **overrides) -> "EvalSizes":
        """Profile ``profile_name``'s sizes, then ``overrides``; an unknown key is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise RefusalTLError(f"unknown evaluation size(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**{**profile(profile_name, "eval"), **overrides})

    def replace(self, **kw) -> "EvalSizes":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


def split(name: str, stage: str, nested: set[str], nested_overrides: dict | None = None,
          **overrides) -> tuple[dict, dict]:
    """``stage``'s settings of profile ``name`` split into a run config's keyword arguments and
    those of its nested training config (the fields named in ``nested``), each with its
    overrides applied (None values ignored). The configs' ``from_profile`` share this."""
    base = profile(name, stage)
    inner = {k: base.pop(k) for k in list(base) if k in nested}
    inner.update({k: v for k, v in (nested_overrides or {}).items() if v is not None})
    return {**base, **{k: v for k, v in overrides.items() if v is not None}}, inner


def describe(name: str) -> str:
    """In words: what each stage of profile ``name`` trains and evaluates on."""
    dim, rdo, cone, rep, ev = (profile(name, s) for s in ("dim", "rdo", "cone", "repind", "eval"))
    train = "SALAD-Bench / Alpaca from the Hub (bundled splits offline)" if "harmful_train" in rdo else "bundled splits"
    n = lambda x: "all" if x is None else x
    where = "" if dim.get("positions") is None else f", position(s) {', '.join(map(str, dim['positions']))} only"
    return (f"{name}: DIM on {n(dim['n_train'])} train prompts per class ({train}), {n(dim['n_val'])} val{where}; "
            f"RDO on {n(rdo['n_train'])} train prompts per class, steps of {rdo['accumulation']} pairs, "
            f"{rdo['epochs']} epoch(s); cones of dimensions {', '.join(map(str, cone['dims']))} "
            f"({cone['init']} start, {cone['n_samples']} sample(s) per example, steps of {cone['accumulation']}); "
            f"{rep['k']} RepInd direction(s), {rep['candidates']} start(s) each, {rep['epochs']} epoch(s); "
            f"evaluation on {ev['n_eval']} test prompts per set, {ev['max_new_tokens']} new tokens, "
            f"{ev['n_cone_samples']} cone samples.")
