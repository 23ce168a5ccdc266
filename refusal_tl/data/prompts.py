"""Prompt sets: the bundled ones, local files, and the paper's datasets from the Hub.

Bundled sets (``refusal_tl/prompts/*.jsonl``) are written by this project: harmful
instructions over several harm categories (with a ``category`` field), harmless
everyday instructions, and *sensitive* ones: harmless requests that look harmful
(homonyms, figurative language, games, definitions, history, safety advice; an
XSTest-style over-refusal probe, evaluation only). Splits are fixed and seeded (shuffle
with seed 42, then 60/20/20 train/val/test; ``all`` is the whole set), so every run sees
the same prompts.

Local files: ``.jsonl`` / ``.json`` (objects with an ``instruction``, ``prompt``, ``goal``
or ``Goal`` field, or plain strings), ``.csv`` (one of those columns) and ``.txt`` (one
prompt per line).

:func:`load_source` reads any of them from one string: ``bundled:KIND:SPLIT``, a file path,
or ``hub:NAME[:SPLIT]`` (the paper's public sets, :mod:`refusal_tl.data.hub`).
"""

from __future__ import annotations

import csv
import json
import random
from importlib import resources
from pathlib import Path

from refusal_tl.data.hub import load_hub
from refusal_tl.errors import RefusalTLError

FIELDS = ("instruction", "prompt", "goal", "Goal", "forbidden_prompt", "question")
SPLITS = ("train", "val", "test", "all")
KINDS = ("harmful", "harmless", "sensitive")


def bundled_records(kind: str) -> list[dict]:
    """All bundled records of ``kind`` ('harmful', 'harmless' or 'sensitive'), as dicts."""
    if kind not in KINDS:
        raise RefusalTLError(f"unknown bundled set {kind!r}: choose one of {', '.join(KINDS)}.")
    text = resources.files("refusal_tl.data").joinpath(f"prompts/{kind}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def bundled_split(kind: str, split: str, seed: int = 42) -> list[dict]:
    """Fixed seeded 60/20/20 train/val/test split of a bundled set (``all``: every record)."""
    if split not in SPLITS:
        raise RefusalTLError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}.")
    records = bundled_records(kind)
    if split == "all":
        return records
    random.Random(seed).shuffle(records)
    n = len(records)
    bounds = {"train": (0, int(0.6 * n)), "val": (int(0.6 * n), int(0.8 * n)), "test": (int(0.8 * n), n)}
    lo, hi = bounds[split]
    return records[lo:hi]


def bundled(kind: str, split: str, n: int | None = None) -> list[str]:
    """Instructions of a bundled split, the first ``n`` (all if None)."""
    return [r["instruction"] for r in bundled_split(kind, split)][:n]


def load_prompts(path: str | Path, n: int | None = None) -> list[str]:
    """Instructions from a local ``.jsonl``/``.json``/``.csv``/``.txt`` file (first ``n``)."""
    path = Path(path)
    if not path.is_file():
        raise RefusalTLError(f"prompt file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        prompts = [_field(_json_line(line, path, i), path, i)
                   for i, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RefusalTLError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}).") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise RefusalTLError(f"{path} must hold a JSON list of prompts or of objects with an 'instruction' field.")
        prompts = [_field(x, path, i) for i, x in enumerate(data, start=1)]
    elif suffix == ".csv":
        with open(path, newline="") as f:
            prompts = [_field(row, path, i) for i, row in enumerate(csv.DictReader(f), start=2)]
    elif suffix == ".txt":
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        raise RefusalTLError(f"unsupported prompt file type {suffix!r}: use .jsonl, .json, .csv or .txt.")
    if not prompts:
        raise RefusalTLError(f"prompt file {path} is empty: it must hold at least one instruction.")
    return prompts[:n]


def _json_line(line: str, path: Path, lineno: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise RefusalTLError(f"{path}:{lineno} is not valid JSON ({err.msg}); fix or remove that line.") from None


def _field(record, path: Path, where: int) -> str:
    if isinstance(record, str):
        value = record
    elif isinstance(record, dict):
        value = next((record[k] for k in FIELDS if isinstance(record.get(k), str)), None)
        if value is None:
            raise RefusalTLError(
                f"{path}:{where} has none of the fields {', '.join(FIELDS)}; add an 'instruction' field."
            )
    else:
        raise RefusalTLError(f"{path}:{where} must be a string or an object with an 'instruction' field.")
    if not value.strip():
        raise RefusalTLError(f"{path}:{where} holds an empty prompt; remove that entry.")
    return value.strip()


def load_source(spec: str, n: int | None = None) -> list[str]:
    """Prompts from ``bundled:KIND[:SPLIT]``, ``hub:NAME[:SPLIT]`` or a local file (first ``n``)."""
    if spec.startswith("bundled:"):
        _, kind, split = (spec.split(":") + ["test"])[:3]
        return bundled(kind, split, n)
    if spec.startswith("hub:"):
        _, name, split = (spec.split(":") + ["all"])[:3]
        return load_hub(name, n, split=split)
    return load_prompts(spec, n)
