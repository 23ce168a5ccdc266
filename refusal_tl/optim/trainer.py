"""One training loop for every method: k unit vectors (a k × d matrix) on the sphere.

Context: RDO (Algorithm 1, k = 1), refusal cones (Algorithm 2, k = N basis rows) and
representational independence all optimise unit vectors by projected gradient descent
(docs/algorithms.md §5). They differ only in the loss, which is a callback here:

``loss_fn(rows, group, step) -> {term: mean}`` computes the loss terms of the examples
``group`` at optimizer step ``step`` (0-based; it seeds per-step randomness such as cone
samples, so a resumed run draws the same) for the parameter ``rows`` (a ``[k, d]``
``nn.Parameter``), back-propagates the weighted loss into ``rows.grad`` itself (term by
term, so one graph is alive at a time) and returns each term's unweighted mean. The loop then, per optimizer step:

1. projects each row's gradient onto its tangent space and clips the norm;
2. takes an AdamW (amsgrad) step;
3. applies the hard constraints (rows ⟂ given directions), then renormalises each row
   (``normalise``) or runs ordered Gram–Schmidt (``gram_schmidt``);
4. feeds the unweighted sum of the terms to the plateau rule (÷10, at most twice, then stop);
5. records the rows and the losses, and writes a checkpoint (no pickle), so a rerun
   resumes after the last finished step.

Each epoch visits a permutation seeded by ``seed + epoch`` in groups of ``accumulation``
examples (drop_last), so a resumed run sees exactly the groups it would have seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, no_type_check

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from refusal_tl.errors import RefusalTLError, check_at_least_one, check_positive
from refusal_tl.optim.checkpoint import claim_checkpoint, load_checkpoint, save_checkpoint, training_key
from refusal_tl.optim.plateau import Plateau
from refusal_tl.optim.sphere import gram_schmidt, normalise_rows, project_out, tangent_rows

LossFn = Callable[[torch.nn.Parameter, list[int], int], dict[str, float]]


@no_type_check  # __post_init__ validates, with errors that name the fix
@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by every method (defaults: the paper, docs/algorithms.md §5)."""

    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    accumulation: int = 16  # examples per optimizer step (effective batch)
    clip: float = 10.0
    patience: int = 5
    max_lr_reductions: int = 2
    plateau_window: int = 1
    epochs: int = 1
    seed: int = 42

    def __post_init__(self):
        check_positive(self, "lr", "clip")
        check_at_least_one(self, "accumulation", "patience", "plateau_window", "epochs")
        if self.max_lr_reductions < 0:
            raise RefusalTLError(f"max_lr_reductions must be ≥ 0, got {self.max_lr_reductions}.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise RefusalTLError(f"betas must be two numbers in [0, 1), got {self.betas}.")


@dataclass
class SphereRun:
    """A finished (or interrupted) run: final rows, rows after each step, loss history."""

    rows: Float[Tensor, "k d"]
    vectors: list[Float[Tensor, "k d"]]
    history: list[dict]
    key: dict
    stopped: bool = False
    lr: float = 0.0
    plateau: Plateau = field(default_factory=Plateau)

    @property
    def step(self) -> int:
        return len(self.history)

    @property
    def lowest_loss_step(self) -> int:
        """Index of the saved rows with the lowest unweighted train loss (the official selection)."""
        return min(range(len(self.history)), key=lambda i: self.history[i]["train_loss"])


def random_rows(k: int, d: int, seed: int, constraints: Tensor | None = None,
                orthogonalise: Literal["normalise", "gram_schmidt"] = "normalise") -> Float[Tensor, "k d"]:
    """Seeded N(0, I) rows, constrained and orthonormalised as the trainer keeps them."""
    rows = project_out(torch.randn(k, d, generator=torch.Generator().manual_seed(seed)), constraints)
    return normalise_rows(rows) if orthogonalise == "normalise" else gram_schmidt(rows)


def train_sphere(
    init: Float[Tensor, "k d"], n_examples: int, loss_fn: LossFn, cfg: TrainConfig, *, key: dict,
    orthogonalise: Literal["normalise", "gram_schmidt"] = "normalise", constraints: Tensor | None = None,
    checkpoint: str | Path | None = None, max_steps: int | None = None, progress: bool = True,
    desc: str = "training",
) -> SphereRun:
    """Train ``init`` (k unit rows) with ``loss_fn`` over ``n_examples`` examples; see the module doc.

    ``key`` describes everything that determines the trajectory; a checkpoint resumes only
    a run with the same key, one of other settings is kept aside (:func:`claim_checkpoint`)
    and training starts afresh. ``max_steps`` stops early (a later call resumes).
    """
    per_epoch = n_examples // cfg.accumulation
    if per_epoch == 0:
        raise RefusalTLError(f"training needs at least {cfg.accumulation} examples (one step); got {n_examples}. "
                             "Use a larger profile or more prompts.")
    key = {**key, "train": asdict(cfg), "k": init.shape[0], "orthogonalise": orthogonalise,
           "constraints": None if constraints is None else int(constraints.shape[0])}
    key = json.loads(json.dumps(key, default=str))  # as a checkpoint stores it (tuples become lists)
    rows = torch.nn.Parameter(init.detach().clone())
    opt = torch.optim.AdamW([rows], lr=cfg.lr, betas=cfg.betas, weight_decay=0.0, amsgrad=True)
    run = SphereRun(rows.detach().clone(), [], [], key, lr=cfg.lr,
                    plateau=Plateau(cfg.patience, cfg.max_lr_reductions, cfg.plateau_window))
    if checkpoint is not None:
        claim_checkpoint(checkpoint, key, training_key)  # other settings' run kept aside, not an error
    if checkpoint is not None and Path(checkpoint).is_file():
        run = _resume(checkpoint, key, rows, opt)
    fix = normalise_rows if orthogonalise == "normalise" else gram_schmidt
    total = per_epoch * cfg.epochs if max_steps is None else min(max_steps, per_epoch * cfg.epochs)
    bar = tqdm(total=total, initial=run.step, desc=desc, disable=not progress)
    while run.step < total and not run.stopped:
        epoch, k = divmod(run.step, per_epoch)
        order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        group = order[k * cfg.accumulation:(k + 1) * cfg.accumulation]
        opt.zero_grad()
        t0 = time.perf_counter()
        means = loss_fn(rows, group, run.step)
        rows.grad = tangent_rows(rows.grad, rows.detach())
        torch.nn.utils.clip_grad_norm_([rows], cfg.clip)
        opt.step()
        with torch.no_grad():
            rows.data = fix(project_out(rows.data, constraints))
        train_loss = sum(means.values())  # unweighted: what the plateau rule and selection use
        event = run.plateau.step(train_loss)
        if event == "reduce":
            for g in opt.param_groups:
                g["lr"] /= 10
        run.stopped, run.lr = event == "stop", opt.param_groups[0]["lr"]
        run.history.append({"step": run.step + 1, "epoch": epoch, "lr": run.lr, "train_loss": train_loss, **means,
                            "seconds": time.perf_counter() - t0})
        run.vectors.append(rows.detach().cpu().clone())
        run.rows = rows.detach().clone()
        if checkpoint is not None:
            save_checkpoint(checkpoint, run.rows, run.vectors, opt.state_dict(), _state(run))
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{run.lr:.0e}")
    bar.close()
    return run


def _state(run: SphereRun) -> dict:
    return {"key": run.key, "history": run.history, "stopped": run.stopped, "lr": run.lr,
            "plateau": run.plateau.to_dict()}


def _resume(path, key: dict, rows: torch.nn.Parameter, opt: torch.optim.Optimizer) -> SphereRun:
    saved, vectors, optimizer, state = load_checkpoint(path, key)
    rows.data.copy_(saved)
    opt.load_state_dict(optimizer)
    return SphereRun(saved.to(rows.device), vectors, state["history"], key, state["stopped"], state["lr"],
                     Plateau.from_dict(state["plateau"]))
