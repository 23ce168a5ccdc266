"""Tokenised RDO examples: ``prompt + target`` rows and the window their loss reads.

Only target tokens are supervised (docs/algorithms.md §4): the window is each row's last
template token plus its target tokens, and the labels are the next tokens inside it.
Examples of a step are grouped by token length (:func:`buckets`) so batches carry little
padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from jaxtyping import Int
from torch import Tensor

from refusal_tl.io import json_digest
from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.metrics import target_labels


class Example(NamedTuple):
    """A chat prompt and the target completion a loss term supervises."""

    prompt: str
    target: str


@dataclass(frozen=True)
class TrainingPair:
    """One training example of RDO, the cones and RepInd (docs/algorithms.md §4): a harmful prompt
    with its answer target (L_abl), a harmless prompt with its refusal target (L_add), and a harmless
    prompt with its retain target (L_ret)."""

    answer: Example
    refusal: Example
    retain: Example


def pairs_digest(pairs: list[TrainingPair]) -> str:
    """Digest of the pairs for checkpoint keys (the JSON of their fields, as when pairs were dicts)."""
    return json_digest([asdict(p) for p in pairs])


TERMS = ("abl", "add", "ret")
SOURCE = {"abl": "answer", "add": "refusal", "ret": "retain"}  # which target set each term reads


@dataclass
class Windows:
    """``prompt + target`` pairs, tokenised (left padding), with the loss window.

    ``labels`` and ``window`` cover the last ``width`` positions: the window is each row's
    last template token plus its target tokens (the positions whose logits are supervised).
    """

    batch: Batch
    labels: Int[Tensor, "batch width"]
    window: Int[Tensor, "batch width"]

    @property
    def width(self) -> int:
        return self.labels.shape[1]


def windows(model: RefusalModel, prompts: list[str], targets: list[str], share_prefix: bool = True,
            whole: bool = False) -> Windows:
    """Tokenise ``prompts + targets``; ``whole=True`` keeps every position in the window arrays."""
    full = model.chat.tokenize(prompts, targets, share_prefix=share_prefix)
    n_prompt = model.chat.tokenize(prompts, share_prefix=share_prefix).mask.sum(1)
    n_target = full.mask.sum(1) - n_prompt
    pos = torch.arange(full.ids.shape[1])
    target_mask = (pos >= full.ids.shape[1] - n_target[:, None]).long()
    window = target_mask.clone()
    window[:, :-1] |= target_mask[:, 1:]  # add each row's last template token
    width = full.ids.shape[1] if whole else int(n_target.max()) + 1
    labels = target_labels(full.ids, target_mask)
    return Windows(full.to(model.device), labels[:, -width:].to(model.device), window[:, -width:].to(model.device))


def left_pad(rows: list[Tensor], length: int) -> Tensor:
    """Stack ``[n_i, ...]`` tensors into ``[len(rows), length, ...]``, zeros on the left."""
    out = rows[0].new_zeros((len(rows), length, *rows[0].shape[1:]))
    for i, row in enumerate(rows):
        out[i, length - row.shape[0]:] = row
    return out


def column(pairs: list[TrainingPair], idx: list[int], name: str) -> tuple[list[str], list[str]]:
    """Prompts and targets of the ``name`` example (answer, refusal or retain) of the pairs ``idx``."""
    rows = [getattr(pairs[i], name) for i in idx]
    return [r.prompt for r in rows], [r.target for r in rows]


def buckets(lengths: list[int], idx: list[int], size: int) -> list[list[int]]:
    """Split ``idx`` into micro-batches of similar token length (less padding)."""
    order = sorted(idx, key=lambda i: lengths[i])
    return [order[k:k + size] for k in range(0, len(order), size)]


def pair_lengths(model: RefusalModel, pairs: list[TrainingPair]) -> dict[str, list[int]]:
    """Token count of ``prompt + target`` per pair and term (for bucketing)."""
    tok = model.tokenizer
    return {name: [len(tok("".join(getattr(p, SOURCE[name])), add_special_tokens=False).input_ids) for p in pairs]
            for name in TERMS}
