"""Training checkpoints without pickle: tensors in safetensors, state in its JSON header.

One file holds the rows being trained, the rows saved after every step, the optimizer's
moment tensors, and (as JSON) the step, history, plateau, learning rate, optimizer
hyper-parameters and the configuration key. Loading it runs no code; a checkpoint written
by another configuration is refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from refusal_tl.errors import RefusalTLError
from refusal_tl.io import load_tensors, read_json, save_tensors

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
