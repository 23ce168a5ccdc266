"""Capability benchmarks with lm-eval (the paper's Table 4 axis; docs/algorithms.md §7).

The paper measures what ablating a refusal direction costs on TruthfulQA MC2, ARC-Challenge,
MMLU and GSM8K. Here lm-eval's Hugging Face wrapper runs on two in-memory models: the original
weights and the weight-orthogonalised ones (:func:`refusal_tl.export.baked_model`, equal to hook
ablation to 1e-4), with the chat template applied, so the intervention is exactly the exported
model's. Those tasks' data come from the Hugging Face Hub: offline, lm-eval cannot load them
and :func:`lm_eval_scores` says so in one line; the offline **proxy**
(:mod:`refusal_tl.eval.capability`) runs anywhere. ``task_dir`` adds local lm-eval task YAMLs
(the tests use one with local data).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from refusal_tl.errors import RefusalTLError
from refusal_tl.export import baked_model
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.profiles import BENCH_TASKS

# the number the paper's table reports for each task (lm-eval's metric,filter keys)
HEADLINE = ("acc,none", "exact_match,strict-match", "acc_norm,none", "exact_match,flexible-extract")



def headline_order(gsm8k_filter: str = "strict-match") -> tuple[str, ...]:
    """:data:`HEADLINE` with ``exact_match,{gsm8k_filter}`` first among the exact-match metrics."""
    if gsm8k_filter not in ("strict-match", "flexible-extract"):
        raise RefusalTLError(f"gsm8k_filter must be strict-match or flexible-extract, got {gsm8k_filter!r}.")
    first = f"exact_match,{gsm8k_filter}"
    return (first, *[m for m in HEADLINE if m != first])


BASELINE = "no intervention"


@dataclass
class BenchmarkScores:
    """lm-eval's metrics per condition (``"no intervention"`` and each ablated set) and task."""

    tasks: list[str]
    scores: dict[str, dict[str, dict[str, float]]]  # condition -> task -> metric -> value
    directions: dict[str, list[dict]]  # condition -> the ablated directions' metadata
    limit: int | None
    seconds: float
    headline: dict[str, str] = field(default_factory=dict)  # task -> the metric shown in tables

    def table(self):
        """One row per task and condition: the headline metric and its change from no intervention."""
        rows = [dict(task=t, metric=self.headline[t], condition=c, score=self.scores[c][t][self.headline[t]],
                     change=self.scores[c][t][self.headline[t]] - self.scores[BASELINE][t][self.headline[t]])
                for t in self.tasks for c in self.scores]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return asdict(self)


def lm_eval_scores(model: RefusalModel, conditions: dict[str, list[RefusalDirection]], tasks=BENCH_TASKS,
                   limit: int | None = None, batch_size: int = 8, task_dir: str | Path | None = None,
                   chat_template: bool = True, lm_eval_tasks: bool = True,
                   gsm8k_filter: str = "strict-match") -> BenchmarkScores:
    """Run lm-eval ``tasks`` on ``model`` unchanged and, for each condition, with its directions
    ablated (their span, baked into the weights).

    ``task_dir``: a folder of extra task YAMLs; ``lm_eval_tasks=False`` indexes only those
    (lm-eval's own index takes ~15 s to build). ``gsm8k_filter``: which of lm-eval's GSM8K answer
    extractions Table 4 shows (``strict-match`` or the paper's ``flexible-extract``)."""
    if not conditions or not all(conditions.values()):
        raise RefusalTLError("lm-eval side effects need a direction to ablate (--direction FILE).")
    for d in (d for ds in conditions.values() for d in ds):
        d.check_width(model.d_model)
    tasks = list(tasks)
    manager = load_tasks(tasks, task_dir, lm_eval_tasks)
    start = time.perf_counter()
    scores = {}
    for name, dirs in {BASELINE: [], **conditions}.items():
        hf = baked_model(model, dirs).to(model.device)  # plain transformers: lm-eval sees no hooks
        scores[name] = _run(hf, model.tokenizer, tasks, manager, limit, batch_size, chat_template)
        del hf
    names, base = sorted(scores[BASELINE]), scores[BASELINE]
    headline = {t: next(m for m in (*headline_order(gsm8k_filter), *base[t]) if m in base[t]) for t in names}
    return BenchmarkScores(names, scores, {c: [d.metadata() for d in ds] for c, ds in conditions.items()},
                           limit, time.perf_counter() - start, headline)


def load_tasks(tasks: list[str], task_dir: str | Path | None = None, lm_eval_tasks: bool = True):
    """lm-eval's task index with ``tasks`` loaded (their data downloaded), or a one-line error."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise RefusalTLError("lm-eval is not installed: pip install 'refusal_tl[bench]' (or lm-eval), or use the "
                             "offline capability proxy (eval --capability).") from None
    manager = _task_manager(str(task_dir) if task_dir else None, lm_eval_tasks)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise RefusalTLError(f"unknown lm-eval task(s) {', '.join(unknown)}: see `lm-eval ls tasks`, or pass "
                             "--tasks-dir with your own task YAMLs.")
    try:
        manager.load(tasks)  # downloads the data once; the runs below read datasets' cache
        return manager
    except Exception as e:  # datasets raises many kinds (connection, offline mode, missing files)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RefusalTLError(f"lm-eval could not load the data of {', '.join(tasks)} ({first}); these tasks "
                             "download from the Hugging Face Hub: run where it is reachable, or use the offline "
                             "capability proxy (eval --capability).") from None


@functools.lru_cache(maxsize=4)
def _task_manager(task_dir: str | None, lm_eval_tasks: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=task_dir, include_defaults=lm_eval_tasks)  # indexing takes ~15 s: once


def _run(hf_model, tokenizer, tasks, manager, limit, batch_size, chat_template) -> dict[str, dict[str, float]]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    device = str(next(hf_model.parameters()).device)
    lm = HFLM(pretrained=hf_model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                  apply_chat_template=chat_template, log_samples=False, verbosity="ERROR")
    return {task: {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and "stderr" not in k and k != "sample_len"}
            for task, metrics in out["results"].items()}
