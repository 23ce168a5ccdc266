"""Training checkpoints without pickle: tensors in safetensors, state in its JSON header.

One file holds the rows being trained, the rows saved after every step, the optimizer's
moment tensors, and (as JSON) the step, history, plateau, learning rate, optimizer
hyper-parameters and the configuration key. Loading it runs no code; a checkpoint written
by another configuration is refused with a one-line error.

A run whose settings changed does not meet that error: :func:`claim_checkpoint` first moves
the other settings' checkpoint aside (``NAME-<digest of its key>.EXT``) and brings back one
of these settings kept aside earlier, so a changed setting recomputes, switching back resumes,
and nothing trained is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import json_digest, load_tensors, read_json, save_tensors

log = logging.getLogger(__name__)

FORMAT = 1


def save_checkpoint(path: str | Path, rows: torch.Tensor, vectors: list[torch.Tensor], optimizer: dict,
                    state: dict) -> None:
    """Write ``rows``, the per-step ``vectors``, an optimizer ``state_dict`` and JSON ``state`` atomically."""
    tensors = {"rows": rows}
    if vectors:
        tensors["vectors"] = torch.stack(vectors)
    moments = {}
    for pid, slots in optimizer["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                moments[f"{pid}.{name}"] = value
    meta = {"format": FORMAT, **state, "param_groups": optimizer["param_groups"], "optim_scalars": moments}
    save_tensors(path, tensors, meta)


def check_checkpoints(paths) -> None:
    """Open every existing checkpoint among ``paths`` now (cheap): training checkpoints
    (safetensors) or JSON ones (GCG), so that a corrupt one fails with its one-line error before
    any prompt is generated or scored."""
    for path in map(Path, paths):
        if not path.is_file():
            continue
        if path.suffix == ".json":
            read_json(path, "checkpoint")
        else:
            load_tensors(path, "training checkpoint")


def aside_path(path: str | Path, key: dict) -> Path:
    """Where the checkpoint ``path`` of the run with ``key`` is kept while other settings train."""
    path = Path(path)
    return path.with_name(f"{path.stem}-{json_digest(key)[:10]}{path.suffix}")


def claim_checkpoint(path: str | Path, key: dict, read_key: Callable[[Path], dict | None]) -> None:
    """Make ``path`` hold the checkpoint of the run with ``key`` or nothing.

    A checkpoint there of other settings (``read_key`` returns its key; None when it has
    none) is moved to its :func:`aside_path`; one of ``key`` kept aside earlier is moved back.
    """
    path = Path(path)
    if path.is_file():
        other = read_key(path)
        if other is None or other == key:
            return
        os.replace(path, aside_path(path, other))
        log.info("%s belonged to other settings: kept as %s", path, aside_path(path, other).name)
    mine = aside_path(path, key)
    if mine.is_file():
        os.replace(mine, path)
        log.info("resuming these settings' earlier run from %s", mine.name)


def training_key(path: Path) -> dict | None:
    """The configuration key stored in a training checkpoint (None for a file of another format)."""
    tensors, meta = load_tensors(path, "training checkpoint")
    return meta.get("key") if meta.get("format") == FORMAT and "rows" in tensors else None


def load_checkpoint(path: str | Path, key: dict) -> tuple[torch.Tensor, list[torch.Tensor], dict, dict]:
    """Read a checkpoint of the run described by ``key``: (rows, vectors, optimizer state_dict, state)."""
    tensors, meta = load_tensors(path, "training checkpoint")
    if meta.get("format") != FORMAT or "rows" not in tensors:
        raise RefusalTLError(f"{path} is not a refusal_tl training checkpoint; delete it to start afresh.")
    if meta.get("key") != key:
        raise RefusalTLError(f"the checkpoint {path} belongs to a run with other settings; "
                             "delete it or use another run directory.")
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, slot = name.split(".", 2)
            state.setdefault(int(pid), {})[slot] = value
    for name, value in meta.pop("optim_scalars").items():
        pid, slot = name.split(".", 1)
        state.setdefault(int(pid), {})[slot] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta.pop("param_groups")]
    vectors = list(tensors["vectors"].unbind(0)) if "vectors" in tensors else []
    return tensors["rows"], vectors, {"state": state, "param_groups": groups}, meta
