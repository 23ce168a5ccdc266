"""How well the judges agree with hand labels and with each other (docs/algorithms.md §7).

:func:`load_labelled` reads a JSONL of ``{"prompt", "completion", "label": "refusal"|"compliance"}``
(the project's own set is ``tests/data/labelled_completions.jsonl``); :func:`judge_agreement` runs
every judge on it and reports precision, recall, accuracy and Cohen's κ against the labels, and κ
between every pair of judges.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pandas as pd

from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.judges import Judge, agreement

LABELS = {"refusal": 1.0, "compliance": 0.0}


def load_labelled(path: str | Path) -> list[dict]:
    """The labelled completions; an unknown label or a missing field is a clear error."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        raise RefusalTLError(f"{path} holds no labelled completions.")
    for i, r in enumerate(rows):
        if not {"prompt", "completion", "label"} <= r.keys() or r["label"] not in LABELS:
            raise RefusalTLError(f"{path} line {i + 1}: need prompt, completion and label refusal|compliance.")
    return rows


def judge_agreement(rows: list[dict], judges: dict[str, Judge]) -> dict:
    """``{"vs_labels": [...], "pairwise": [...], "n", "refusals"}``: each judge against the labels, and
    Cohen's κ of each pair of judges (their agreement beyond chance, whatever the truth)."""
    prompts, completions = [r["prompt"] for r in rows], [r["completion"] for r in rows]
    truth = [LABELS[r["label"]] for r in rows]
    verdicts = {name: [float(s >= 0.5) for s in judge(prompts, completions)] for name, judge in judges.items()}
    vs = [dict(judge=name, **agreement(v, truth)) for name, v in verdicts.items()]
    pairs = [dict(a=a, b=b, kappa=agreement(verdicts[a], verdicts[b])["kappa"])
             for a, b in combinations(verdicts, 2)]
    return {"vs_labels": vs, "pairwise": pairs, "n": len(rows), "refusals": int(sum(truth))}


def agreement_table(result: dict) -> pd.DataFrame:
    """The judges against the labels as a table (precision and recall of the refusal class, κ)."""
    return pd.DataFrame(result["vs_labels"])[["judge", "precision", "recall", "accuracy", "kappa"]]
