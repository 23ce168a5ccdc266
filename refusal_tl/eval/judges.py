"""Judges of completions: ``judge(prompts, completions) -> list[float]`` with a ``kind``.

``"refusal"`` scores are 1 for a refusal (the substring judge), ``"asr"`` scores are the
jailbreak success in [0, 1] (StrongREJECT's fine-tuned judge, docs/algorithms.md §7).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from datasets import Dataset

from refusal_tl.errors import RefusalTLError
from refusal_tl.steer.metrics import is_refusal


@runtime_checkable
class Judge(Protocol):
    name: str
    kind: str  # "refusal" (1 = refused) or "asr" (1 = fully jailbroken)

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]: ...


class SubstringJudge:
    """Arditi et al.'s substring matcher (docs/algorithms.md §7): 1.0 when a refusal phrase appears."""

    name, kind = "substring", "refusal"

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        return [float(is_refusal(c)) for c in completions]


class StrongRejectJudge:
    """StrongREJECT's fine-tuned judge (Gemma-2B + LoRA), via the ``strong_reject`` package.

    Needs the Hugging Face Hub (gated ``google/gemma-2b``) and a GPU in practice.
    ASR = mean continuous score (docs/algorithms.md §7).
    """

    name, kind = "strongreject_finetuned", "asr"

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        try:
            from strong_reject.evaluate import evaluate_dataset
        except ImportError:
            raise RefusalTLError(
                "the StrongREJECT judge needs the strong_reject package: "
                "pip install git+https://github.com/dsbowen/strong_reject (and Hub access)."
            ) from None
        ds = Dataset.from_dict({"forbidden_prompt": prompts, "response": completions})
        return list(evaluate_dataset(ds, ["strongreject_finetuned"])["score"])


JUDGES = {"substring": SubstringJudge, "strongreject": StrongRejectJudge}
