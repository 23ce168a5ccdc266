"""What the held-out evaluations keep so nothing is computed twice: whole evaluations as JSON in
``RUN/eval`` (:func:`cached`), and, within one evaluation run, every greedy answer by direction,
intervention and prompt (:class:`Answers`), so the cone, RepInd and GCG sections reuse the
baseline and DIM / RDO answers the results table already generated for the same prompts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.eval.judges import Judge, SubstringJudge
from refusal_tl.geometry import RefusalCone, RefusalDirection
from refusal_tl.io import json_default, json_digest, tensor_digest, write_json
from refusal_tl.model import RefusalModel
from refusal_tl.steer.hooks import AT_LAYER, Intervention


def cached(run_dir: str | Path | None, name: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` as JSON data, or the data saved in ``RUN/eval/{name}.json`` when it was made
    with the same ``key``. The result always goes through JSON, so a first and a cached run
    return the same thing (dictionary keys are strings)."""
    digest = json_digest(key)
    path = Path(run_dir) / "eval" / f"{name}.json" if run_dir is not None else None
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = {}
        if saved.get("key") == digest:
            return saved["data"]
    data = json.loads(json.dumps(compute(), default=json_default))
    if path is not None:
        write_json(path, {"key": digest, "data": data})
    return data


def eval_key(model: RefusalModel, **parts) -> dict:
    """A cache key: the model (weights and dtype), the directions' values and every setting and prompt."""
    def one(x):
        if isinstance(x, RefusalDirection):
            return [tensor_digest(x.vector), x.layer]  # addition happens at the direction's layer
        if isinstance(x, RefusalCone):
            return [tensor_digest(x.basis), x.layer, x.alpha]
        if isinstance(x, dict):
            return {str(k): one(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [one(v) for v in x]
        return x
    return {**model.key, **{k: one(v) for k, v in parts.items()}}


class Answers:
    """Greedy answers (and their judgements) by (direction, intervention, prompt), for one model,
    answer length and judge: :meth:`rate` generates only for prompts not seen before."""

    def __init__(self, model: RefusalModel, max_new_tokens: int, judge: Judge | None = None):
        self.model, self.max_new_tokens, self.judge = model, max_new_tokens, judge or SubstringJudge()
        self.book: dict[tuple, tuple[str, float]] = {}

    @staticmethod
    def _key(direction: RefusalDirection | None, intervention: Intervention, prompt: str) -> tuple:
        if direction is None or intervention == "none":
            return (None, "none", prompt)
        layer = direction.layer if intervention in AT_LAYER else None
        return (tensor_digest(direction.vector), layer, intervention, prompt)

    def add(self, direction: RefusalDirection | None, intervention: Intervention, prompts: list[str],
            completions: list[str], scores: list[float]) -> None:
        for p, c, s in zip(prompts, completions, scores):
            self.book[self._key(direction, intervention, p)] = (c, float(s))

    def answers(self, prompts: list[str], direction: RefusalDirection | None = None,
                intervention: Intervention = "none") -> tuple[list[str], list[float]]:
        """Completions and scores of ``prompts``, generating the missing ones."""
        missing = [p for p in dict.fromkeys(prompts) if self._key(direction, intervention, p) not in self.book]
        if missing:
            res = evaluate_intervention(self.model, missing, direction, intervention,
                                        max_new_tokens=self.max_new_tokens, judge=self.judge)
            self.add(direction, intervention, missing, res.completions, res.scores)
        got = [self.book[self._key(direction, intervention, p)] for p in prompts]
        return [c for c, _ in got], [s for _, s in got]

    def rate(self, prompts: list[str], direction: RefusalDirection | None = None,
             intervention: Intervention = "none") -> float:
        """Refusal rate (or ASR, by the judge) of ``prompts`` under the intervention."""
        scores = self.answers(prompts, direction, intervention)[1]
        return sum(scores) / max(len(scores), 1)
