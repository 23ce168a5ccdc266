"""RDO: gradient-optimised refusal directions (Algorithm 1, SPEC E). Work in progress.

Context: a unit direction r is trained by projected gradient descent on the sphere so
that ablating it makes the model answer harmful prompts (L_abl), adding α·r̂ at the DIM
layer makes it refuse harmless ones (L_add), and ablating it leaves harmless behaviour
unchanged (L_ret).

Done and tested on the tiny model: the per-example losses (clean retain logits computed
once per prompt, unembedding only over the target window), the training loop on the
sphere (tangent projection, AdamW with amsgrad, clipping, renormalisation, hard
constraints, plateau schedule, per-step checkpoint and resume, seeding) and the official
lowest-loss selection. Not yet: the last-20 Arditi selection, the CLI, notebook 02, the
benchmark and a run on the bundled model (see issue 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.forward import prefill
from refusal_tl.hooks import ablation_hooks, addition_hooks
from refusal_tl.losses import retain_kl, target_cross_entropy, target_labels
from refusal_tl.model import RefusalModel


@dataclass(frozen=True)
class RdoConfig:
    """Hyper-parameters of Algorithm 1 (defaults: SPEC E)."""

    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    accumulation: int = 16
    clip: float = 10.0
    patience: int = 5
    max_lr_reductions: int = 2
    epochs: int = 1
    weights: dict = field(default_factory=lambda: {"abl": 1.0, "add": 0.2, "ret": 1.0})
    retain_kl: str = "paper"  # or "code": the authors' KL(ablated‖clean) summed over the window
    seed: int = 42


def tangent(grad: Float[Tensor, "d_model"], r: Float[Tensor, "d_model"]) -> Float[Tensor, "d_model"]:
    """Project a gradient onto the tangent space of the sphere at r: g − (g·r̂)r̂."""
    unit = r / r.norm()
    return grad - (grad @ unit) * unit


@dataclass
class Plateau:
    """Reduce-on-plateau: ÷10 after ``patience`` steps without a new best (at most
    ``max_reductions`` times); the next plateau stops training (SPEC E)."""

    patience: int = 5
    max_reductions: int = 2
    best: float = float("inf")
    bad_steps: int = 0
    reductions: int = 0

    def step(self, loss: float) -> str:
        """Record one step's unweighted train loss; return 'ok', 'reduce' or 'stop'."""
        if loss < self.best:
            self.best, self.bad_steps = loss, 0
            return "ok"
        self.bad_steps += 1
        if self.bad_steps < self.patience:
            return "ok"
        self.bad_steps = 0
        if self.reductions >= self.max_reductions:
            return "stop"
        self.reductions += 1
        return "reduce"


def target_logits(model: RefusalModel, prompts: list[str], targets: list[str], hooks) -> tuple[Tensor, Tensor, Tensor]:
    """Logits over the target window of ``prompt + target``, the labels, and the window mask.

    Only the last ``max target length + 1`` positions are unembedded (the last template
    token predicts the first target token). Left padding keeps every window at the end;
    the mask marks, per row, its last template token and its target tokens.
    """
    full = model.chat.tokenize(prompts, targets, share_prefix=True).to(model.device)
    bare = model.chat.tokenize(prompts, share_prefix=True)
    n_target = full.mask.sum(1).cpu() - bare.mask.sum(1)  # per-row target length
    window = int(n_target.max()) + 1
    target_mask = torch.zeros_like(full.ids)
    for row, n in enumerate(n_target.tolist()):
        if n > 0:
            target_mask[row, -n:] = 1
    with model.bridge.hooks(fwd_hooks=list(hooks)):
        cache, mask = prefill(model, full)
        logits = model.bridge(full.ids, attention_mask=mask, past_key_values=cache, logits_to_keep=window)
    labels = target_labels(full.ids, target_mask)[:, -window:]
    window_mask = target_mask.clone()
    window_mask[:, :-1] |= target_mask[:, 1:]  # add the last template token of each row
    return logits, labels, window_mask[:, -window:]


def rdo_losses(model: RefusalModel, r: Tensor, alpha: float, layer: int, batch: dict,
               clean_retain: Tensor | None = None, retain_mode: str = "paper") -> dict[str, Tensor]:
    """L_abl, L_add and L_ret for one batch of (prompt, target) pairs; differentiable in r.

    ``batch`` has ``answer``/``refusal``/``retain`` entries, each ``(prompts, targets)``.
    ``clean_retain`` are the retain-window logits without intervention (computed once).
    """
    L = model.n_layers
    unit = r / r.norm()
    logits, labels, _ = target_logits(model, *batch["answer"], ablation_hooks(r, L))
    parts = {"abl": target_cross_entropy(logits, labels)}
    logits, labels, _ = target_logits(model, *batch["refusal"], addition_hooks(alpha * unit, layer))
    parts["add"] = target_cross_entropy(logits, labels)
    if clean_retain is None:
        with torch.no_grad():
            clean_retain, _, _ = target_logits(model, *batch["retain"], [])
    ablated, _, window = target_logits(model, *batch["retain"], ablation_hooks(r, L))
    parts["ret"] = retain_kl(clean_retain, ablated, retain_mode, mask=window)
    return parts


@dataclass
class RdoRun:
    """Training state, checkpointed after every optimizer step."""

    r: Tensor
    optimizer: dict
    plateau: Plateau
    lr: float
    step: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    vectors: list[Tensor] = field(default_factory=list)  # r after each step, for selection

    @property
    def lowest_loss_vector(self) -> Tensor:
        """The official selection: the saved vector with the lowest unweighted train loss."""
        best = min(range(len(self.history)), key=lambda i: self.history[i]["train_loss"])
        return self.vectors[best]


def _project_constraints(r: Tensor, constraints: Tensor | None) -> Tensor:
    """Remove the span of ``constraints`` (rows) from r (hard constraint, SPEC G)."""
    if constraints is None:
        return r
    q, _ = torch.linalg.qr(constraints.T.float())
    return r - q @ (q.T @ r)


def train_rdo(model: RefusalModel, pairs: list[dict], alpha: float, layer: int, cfg: RdoConfig = RdoConfig(),
              checkpoint: str | None = None, constraints: Tensor | None = None, max_steps: int | None = None,
              progress: bool = True) -> RdoRun:
    """Projected gradient descent on the unit sphere (Algorithm 1).

    ``pairs`` holds one training example each: ``{"answer": (prompt, target), "refusal": ...,
    "retain": ...}``. Micro-batch 1 with ``cfg.accumulation`` steps per update; each epoch
    visits a seeded permutation (drop_last). With ``checkpoint`` the state is saved after
    every step and a rerun resumes from it, losing no step.
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from refusal_tl.io import atomic_write
    from refusal_tl.losses import total_loss

    gen = torch.Generator().manual_seed(cfg.seed)
    r0 = _project_constraints(torch.randn(model.d_model, generator=gen), constraints)
    r = torch.nn.Parameter((r0 / r0.norm()).to(model.device))
    opt = torch.optim.AdamW([r], lr=cfg.lr, betas=cfg.betas, weight_decay=0.0, amsgrad=True)
    state = RdoRun(r.detach().clone(), opt.state_dict(), Plateau(cfg.patience, cfg.max_lr_reductions), cfg.lr)
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, weights_only=False)
        r.data.copy_(state.r)
        opt.load_state_dict(state.optimizer)
    per_epoch = len(pairs) // cfg.accumulation
    total = per_epoch * cfg.epochs if max_steps is None else min(max_steps, per_epoch * cfg.epochs)
    clean: dict[int, Tensor] = {}
    bar = tqdm(total=total, initial=state.step, desc="RDO", disable=not progress)
    while state.step < total and not state.stopped:
        epoch, k = divmod(state.step, per_epoch)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        opt.zero_grad()
        sums = {"abl": 0.0, "add": 0.0, "ret": 0.0}
        with torch.enable_grad():
            for i in order[k * cfg.accumulation:(k + 1) * cfg.accumulation]:
                ex = {name: ([p], [t]) for name, (p, t) in pairs[i].items()}
                if i not in clean:
                    with torch.no_grad():
                        clean[i] = target_logits(model, *ex["retain"], [])[0]
                parts = rdo_losses(model, r, alpha, layer, ex, clean[i], cfg.retain_kl)
                (total_loss(parts, cfg.weights) / cfg.accumulation).backward()
                for name, value in parts.items():
                    sums[name] += float(value.detach()) / cfg.accumulation
        r.grad = tangent(r.grad, r.detach())
        torch.nn.utils.clip_grad_norm_([r], cfg.clip)
        opt.step()
        with torch.no_grad():
            r.data = _project_constraints(r.data, constraints)
            r.data /= r.data.norm()
        train_loss = sum(sums.values())  # unweighted, as the plateau rule and selection use it
        event = state.plateau.step(train_loss)
        if event == "reduce":
            for group in opt.param_groups:
                group["lr"] /= 10
        state.stopped = event == "stop"
        state.lr = opt.param_groups[0]["lr"]
        state.step += 1
        state.history.append({"step": state.step, "lr": state.lr, "train_loss": train_loss, **sums})
        state.vectors.append(r.detach().cpu().clone())
        state.r, state.optimizer = r.detach().clone(), opt.state_dict()
        if checkpoint is not None:
            atomic_write(checkpoint, lambda tmp: torch.save(state, tmp))
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{state.lr:.0e}")
    bar.close()
    return state
