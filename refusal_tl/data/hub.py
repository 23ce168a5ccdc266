"""The paper's datasets from the Hugging Face Hub (docs/algorithms.md §0): need network access.

``load_hub(name, n, split)``: SALAD-Bench (harmful train/val/test: a seeded random sample of at
most 256 per source, test-set duplicates removed, shuffled with seed 42, sliced 1,184 / 128 / rest
as the authors' splits), Alpaca (harmless, rows without
``input``, shuffled with seed 42, 80/10/10), JailbreakBench, StrongREJECT, XSTest and
SORRY-Bench (evaluation sets, ``split="all"``).
"""

from __future__ import annotations

import os
import random
import socket
from functools import cache

from datasets import load_dataset

from refusal_tl.errors import RefusalTLError

HUB_DATASETS = {
    "salad": "OpenSafetyLab/Salad-Data (base_set; harmful train/val)",
    "alpaca": "tatsu-lab/alpaca (rows with empty input; harmless)",
    "jailbreakbench": "JailbreakBench/JBB-Behaviors (100 harmful goals)",
    "strongreject": "walledai/StrongREJECT (313 prompts)",
    "xstest": "walledai/XSTest (250 safe prompts)",
    "sorrybench": "sorry-bench/sorry-bench-202503 (base style, first turn)",
}


@cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers (once per process; ``HF_HUB_OFFLINE=1`` says no without
    asking), so offline runs skip the Hub at once instead of retrying each dataset for half a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


SPLITS = {"salad": {"train": (0, 1184), "val": (1184, 1312), "test": (1312, None)},
          "alpaca": {"train": (0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}}


def load_hub(name: str, n: int | None = None, seed: int = 42, split: str = "all", **options) -> list[str]:
    """One of the paper's datasets from the Hugging Face Hub (first ``n`` of ``split``). ``options`` go to
    the SALAD loader only: ``sample="first"`` (the first 256 per source instead of a seeded random
    sample) and ``dedupe=False`` (keep duplicates of the evaluation sets)."""
    if name not in HUB_DATASETS:
        raise RefusalTLError(f"unknown dataset {name!r}: choose one of {', '.join(HUB_DATASETS)}.")
    if options and name != "salad":
        raise RefusalTLError(f"loader options {sorted(options)} apply to 'salad' only, not {name!r}.")
    if split != "all" and split not in SPLITS.get(name, {}):
        raise RefusalTLError(f"dataset {name!r} has no split {split!r}: use "
                             f"{', '.join([*SPLITS.get(name, {}), 'all'])}.")
    try:
        prompts = _HUB_LOADERS[name](load_dataset, seed, **options)
    except RefusalTLError:
        raise
    except Exception as err:
        raise RefusalTLError(
            f"could not load {HUB_DATASETS[name]} from the Hugging Face Hub ({type(err).__name__}); "
            "check network access and `huggingface-cli login` for gated sets, or pass a local file."
        ) from None
    return split_slice(prompts, SPLITS[name][split])[:n] if split != "all" else prompts[:n]


def split_slice(items: list[str], bounds: tuple) -> list[str]:
    """``items[lo:hi]`` with ``lo``/``hi`` counts, or fractions of ``len(items)`` when floats."""
    lo, hi = (int(b * len(items)) if isinstance(b, float) else b for b in bounds)
    return items[lo:hi]


TEST_SETS = ("jailbreakbench", "strongreject")  # the evaluation sets SALAD's train/val must not repeat


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _salad(load_dataset, seed, sample: str = "random", dedupe: bool = True):
    """SALAD-Bench base_set without Multilingual and ToxicChat, at most 256 per source: a seeded
    random sample per source (``sample="first"``: the first 256, as before), minus exact (normalised)
    duplicates of the evaluation sets when ``dedupe`` (the authors' split script), shuffled with ``seed``."""
    if sample not in ("random", "first"):
        raise RefusalTLError(f"SALAD sampling must be 'random' or 'first', got {sample!r}.")
    rows = load_dataset("OpenSafetyLab/Salad-Data", "base_set", split="train")
    by_source: dict[str, list[str]] = {}
    for r in rows:
        if r["source"] not in ("Multilingual", "ToxicChat"):
            by_source.setdefault(r["source"], []).append(r["question"])
    rng = random.Random(seed)
    pick = (lambda qs: rng.sample(qs, min(256, len(qs)))) if sample == "random" else (lambda qs: qs[:256])
    out = [q for source in sorted(by_source) for q in pick(by_source[source])]
    if dedupe:
        seen = {_norm(p) for name in TEST_SETS for p in _HUB_LOADERS[name](load_dataset, seed)}
        out = [q for q in out if _norm(q) not in seen]
    random.Random(seed).shuffle(out)
    return out


def _alpaca(load_dataset, seed):
    rows = load_dataset("tatsu-lab/alpaca", split="train")
    out = [r["instruction"] for r in rows if not r["input"].strip()]
    random.Random(seed).shuffle(out)
    return out


_HUB_LOADERS = {
    "salad": _salad,
    "alpaca": _alpaca,
    "jailbreakbench": lambda ld, s: list(ld("JailbreakBench/JBB-Behaviors", "behaviors", split="harmful")["Goal"]),
    "strongreject": lambda ld, s: list(ld("walledai/StrongREJECT", split="train")["prompt"]),
    "xstest": lambda ld, s: [r["prompt"] for r in ld("walledai/XSTest", split="test") if r["label"] == "safe"],
    "sorrybench": lambda ld, s: [
        r["turns"][0] for r in ld("sorry-bench/sorry-bench-202503", split="train") if r["prompt_style"] == "base"
    ],
}
