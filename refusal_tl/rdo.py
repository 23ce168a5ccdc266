"""RDO: gradient-optimised refusal directions (Algorithm 1, SPEC E).

Context: a unit direction r is trained by projected gradient descent on the sphere so
that ablating it makes the model answer harmful prompts (L_abl), adding α·r̂ at the DIM
layer makes it refuse harmless ones (L_add), and ablating it leaves harmless behaviour
unchanged (L_ret). Losses are in :mod:`refusal_tl.losses`, targets in
:mod:`refusal_tl.targets`, the run (CLI and notebook entry point) in
:mod:`refusal_tl.rdo_pipeline`.

**The step computes only what depends on r** (:func:`step_losses`):

- the clean retain logits are computed once per prompt (:class:`Prepared`);
- the addition loss restarts from the residual stream cached at ``l_add``: blocks
  ``0 … l_add−1`` do not see r and run once per prompt (:func:`~refusal_tl.forward.logits_from`);
- the unembedding runs only over the target window (last template token + targets);
- the examples of a step are sorted by length and run ``micro_batch`` at a time, with
  per-example loss means, so the loss equals the official micro-batch-1 loss.

:func:`reference_step` is the straightforward step (micro-batch 1, full forwards, full
logits, clean logits recomputed); tests and ``benchmarks/bench_rdo.py`` check both give
the same losses and gradient.

**Selection.** ``lowest_loss`` (official ``run_rdo_pipeline.py``, default): the saved
vector with the lowest unweighted training loss. ``last20`` (the authors' code option):
Arditi's filters over the last 20 saved vectors (:func:`select_rdo`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from refusal_tl.chat import Batch
from refusal_tl.errors import RefusalTLError
from refusal_tl.forward import layer_inputs, logits_from, window_logits
from refusal_tl.hooks import ablation_hooks, addition_hooks
from refusal_tl.io import json_digest
from refusal_tl.losses import retain_kl, target_cross_entropy, target_labels, total_loss
from refusal_tl.model import RefusalModel

log = logging.getLogger(__name__)
TERMS = ("abl", "add", "ret")
SOURCE = {"abl": "answer", "add": "refusal", "ret": "retain"}  # which target set each term reads


@dataclass(frozen=True)
class RdoConfig:
    """Hyper-parameters of Algorithm 1 (defaults: SPEC E) and how the step is batched."""

    lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    accumulation: int = 16  # examples per optimizer step (effective batch)
    micro_batch: int = 16  # examples per forward; any value gives the same loss (per-example means)
    clip: float = 10.0
    patience: int = 5
    max_lr_reductions: int = 2
    epochs: int = 1
    weights: dict = field(default_factory=lambda: {"abl": 1.0, "add": 0.2, "ret": 1.0})
    retain_kl: str = "paper"  # or "code": the authors' KL(ablated‖clean) summed over the window
    plateau_window: int = 1  # step losses averaged by the plateau rule (1: SPEC E)
    seed: int = 42

    def key(self) -> dict:
        """What determines the trajectory (a checkpoint resumes only if this matches)."""
        return {k: v for k, v in asdict(self).items() if k != "micro_batch"}


def tangent(grad: Float[Tensor, "d_model"], r: Float[Tensor, "d_model"]) -> Float[Tensor, "d_model"]:
    """Project a gradient onto the tangent space of the sphere at r: g − (g·r̂)r̂."""
    unit = r / r.norm()
    return grad - (grad @ unit) * unit


@dataclass
class Plateau:
    """Reduce-on-plateau: ÷10 after ``patience`` steps without a new best (at most
    ``max_reductions`` times); the next plateau stops training (SPEC E).

    ``window`` > 1 compares the mean of the last ``window`` step losses instead of the
    step loss itself (SPEC E is ``window=1``): with few examples per step the step loss is
    mostly batch-to-batch noise, and a noisy "plateau" cuts the learning rate early.
    """

    patience: int = 5
    max_reductions: int = 2
    window: int = 1
    best: float = float("inf")
    bad_steps: int = 0
    reductions: int = 0
    recent: list[float] = field(default_factory=list)

    def step(self, loss: float) -> str:
        """Record one step's unweighted train loss; return 'ok', 'reduce' or 'stop'."""
        self.recent = (self.recent + [loss])[-self.window:]
        value = sum(self.recent) / len(self.recent)
        if value < self.best:
            self.best, self.bad_steps = value, 0
            return "ok"
        self.bad_steps += 1
        if self.bad_steps < self.patience:
            return "ok"
        self.bad_steps = 0
        if self.reductions >= self.max_reductions:
            return "stop"
        self.reductions += 1
        return "reduce"


# ---------------------------------------------------------------- tokenised windows


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


# ---------------------------------------------------------------- r-independent caches


class Prepared:
    """What a step needs that does not depend on r, computed once per prompt (no grad).

    - ``clean[i]``: the retain window's logits without intervention, ``[w_i, d_vocab]``;
    - ``resid[i]``: the residual stream entering block ``l_add`` on the refusal pair, ``[n_i, d_model]``.

    Kept on the CPU (float32, about 18 MB per example for Qwen's 152k vocabulary) when
    ``keep`` (several epochs); otherwise dropped after the step that uses them.
    """

    def __init__(self, model: RefusalModel, pairs: list[dict], layer: int, keep: bool = True):
        self.model, self.pairs, self.layer, self.keep = model, pairs, layer, keep
        self.clean: dict[int, Tensor] = {}
        self.resid: dict[int, Tensor] = {}

    @torch.no_grad()
    def ensure(self, idx: list[int]) -> None:
        todo = [i for i in idx if i not in self.clean]
        if not todo:
            return
        w = windows(self.model, *_column(self.pairs, todo, "retain"))
        logits = window_logits(self.model, w.batch, w.width).float()
        n_win = w.window.sum(1).tolist()
        w_add = windows(self.model, *_column(self.pairs, todo, "refusal"), share_prefix=False)
        resid, _ = layer_inputs(self.model, w_add.batch, self.layer)
        n_tok = w_add.batch.mask.sum(1).tolist()
        for row, i in enumerate(todo):
            self.clean[i] = logits[row, logits.shape[1] - n_win[row]:].cpu()
            self.resid[i] = resid[row, resid.shape[1] - n_tok[row]:].float().cpu()

    def release(self, idx: list[int]) -> None:
        if not self.keep:
            for i in idx:
                self.clean.pop(i, None)
                self.resid.pop(i, None)


def _column(pairs: list[dict], idx: list[int], name: str) -> tuple[list[str], list[str]]:
    return [pairs[i][name][0] for i in idx], [pairs[i][name][1] for i in idx]


# ---------------------------------------------------------------- the three loss terms


def term_losses(model: RefusalModel, r: Tensor, name: str, alpha: float, layer: int, pairs: list[dict],
                idx: list[int], prep: Prepared, retain_mode: str = "paper") -> Float[Tensor, "batch"]:
    """Per-example loss of one term (``abl``/``add``/``ret``) for the examples ``idx``; differentiable in r."""
    src = _column(pairs, idx, SOURCE[name])
    if name == "add":
        w = windows(model, *src, share_prefix=False)
        resid = left_pad([prep.resid[i] for i in idx], w.batch.ids.shape[1]).to(model.device, _dtype(model))
        _, block_kwargs = layer_inputs(model, w.batch, 0)  # masks and rotary embeddings only
        hooks = addition_hooks(alpha * r / r.norm(), layer)
        return target_cross_entropy(logits_from(model, resid, block_kwargs, layer, w.width, hooks), w.labels)
    w = windows(model, *src)
    logits = window_logits(model, w.batch, w.width, ablation_hooks(r, model.n_layers))
    if name == "abl":
        return target_cross_entropy(logits, w.labels)
    clean = left_pad([prep.clean[i] for i in idx], w.width).to(model.device)
    return retain_kl(clean, logits, retain_mode, mask=w.window)


def _dtype(model: RefusalModel) -> torch.dtype:
    return next(model.hf_model.parameters()).dtype


def buckets(lengths: list[int], idx: list[int], size: int) -> list[list[int]]:
    """Split ``idx`` into micro-batches of similar token length (less padding)."""
    order = sorted(idx, key=lambda i: lengths[i])
    return [order[k:k + size] for k in range(0, len(order), size)]


def pair_lengths(model: RefusalModel, pairs: list[dict]) -> dict[str, list[int]]:
    """Token count of ``prompt + target`` per pair and term (for bucketing)."""
    tok = model.tokenizer
    return {name: [len(tok(p[SOURCE[name]][0] + p[SOURCE[name]][1], add_special_tokens=False).input_ids)
                   for p in pairs] for name in TERMS}


def step_losses(model: RefusalModel, r: Tensor, alpha: float, layer: int, pairs: list[dict], group: list[int],
                prep: Prepared, lengths: dict[str, list[int]], cfg: RdoConfig, backward: bool = True) -> dict[str, float]:
    """One optimizer step's loss terms over ``group``, averaged over its examples.

    With ``backward`` the weighted loss (each micro-loss divided by ``len(group)``, as
    gradient accumulation does) is back-propagated into ``r.grad`` term by term, so at most
    one micro-batch graph is alive at a time.
    """
    prep.ensure(group)
    means = {}
    for name in TERMS:
        total = 0.0
        for idx in buckets(lengths[name], group, cfg.micro_batch):
            needs_grad = backward and cfg.weights.get(name, 0.0) != 0.0
            with torch.set_grad_enabled(needs_grad):
                values = term_losses(model, r, name, alpha, layer, pairs, idx, prep, cfg.retain_kl)
                if needs_grad:
                    (cfg.weights[name] * values.sum() / len(group)).backward()
            total += float(values.detach().sum())
        means[name] = total / len(group)
    prep.release(group)
    return means


def reference_step(model: RefusalModel, r: Tensor, alpha: float, layer: int, pairs: list[dict], group: list[int],
                   cfg: RdoConfig, backward: bool = True) -> dict[str, float]:
    """The straightforward step, for tests and the benchmark: micro-batch 1, three full
    forwards with full logits per example, the clean retain forward recomputed every time."""
    L = model.n_layers
    means = {name: 0.0 for name in TERMS}

    def full(name, i, hooks):
        w = windows(model, *_column(pairs, [i], SOURCE[name]), share_prefix=False, whole=True)
        with model.bridge.hooks(fwd_hooks=list(hooks)):
            return model.bridge(w.batch.ids, attention_mask=w.batch.mask), w

    for i in group:
        with torch.set_grad_enabled(backward):
            logits, w = full("abl", i, ablation_hooks(r, L))
            parts = {"abl": target_cross_entropy(logits, w.labels)}
            logits, w = full("add", i, addition_hooks(alpha * r / r.norm(), layer))
            parts["add"] = target_cross_entropy(logits, w.labels)
            with torch.no_grad():
                clean, _ = full("ret", i, [])
            logits, w = full("ret", i, ablation_hooks(r, L))
            parts["ret"] = retain_kl(clean, logits, cfg.retain_kl, mask=w.window)
            if backward:
                (total_loss(parts, cfg.weights).sum() / len(group)).backward()
        for name in TERMS:
            means[name] += float(parts[name].detach().sum()) / len(group)
    return means


# ---------------------------------------------------------------- training


@dataclass
class RdoRun:
    """Training state, checkpointed after every optimizer step."""

    r: Tensor
    optimizer: dict
    plateau: Plateau
    lr: float
    key: dict = field(default_factory=dict)
    step: int = 0
    stopped: bool = False
    history: list[dict] = field(default_factory=list)
    vectors: list[Tensor] = field(default_factory=list)  # r after each step, for selection

    @property
    def lowest_loss_step(self) -> int:
        """Index of the saved vector with the lowest unweighted train loss (official selection)."""
        return min(range(len(self.history)), key=lambda i: self.history[i]["train_loss"])


def _project_constraints(r: Tensor, constraints: Tensor | None) -> Tensor:
    """Remove the span of ``constraints`` (rows) from r (hard constraint, SPEC G)."""
    if constraints is None:
        return r
    q, _ = torch.linalg.qr(constraints.T.to(r))
    return r - q @ (q.T @ r)


def train_rdo(model: RefusalModel, pairs: list[dict], alpha: float, layer: int, cfg: RdoConfig = RdoConfig(),
              checkpoint: str | Path | None = None, constraints: Tensor | None = None,
              max_steps: int | None = None, progress: bool = True) -> RdoRun:
    """Projected gradient descent on the unit sphere (Algorithm 1).

    ``pairs`` holds one training example each: ``{"answer": (harmful prompt, t_answer),
    "refusal": (harmless prompt, t_refusal), "retain": (harmless prompt, t_retain)}``.
    Each epoch visits a seeded permutation in groups of ``cfg.accumulation`` (drop_last).
    With ``checkpoint`` the state is saved atomically after every step and a rerun resumes
    from it, losing no step. ``constraints`` (rows) are directions r must stay orthogonal to.
    """
    from tqdm.auto import tqdm

    from refusal_tl.io import atomic_write

    per_epoch = len(pairs) // cfg.accumulation
    if per_epoch == 0:
        raise RefusalTLError(f"RDO needs at least {cfg.accumulation} training pairs (one step); got {len(pairs)}. "
                             "Use a larger profile or more prompts.")
    key = {**cfg.key(), "alpha": round(alpha, 6), "layer": layer, "n_pairs": len(pairs), "pairs": json_digest(pairs),
           "constraints": None if constraints is None else constraints.shape[0]}
    gen = torch.Generator().manual_seed(cfg.seed)
    r0 = _project_constraints(torch.randn(model.d_model, generator=gen), constraints)
    r = torch.nn.Parameter((r0 / r0.norm()).to(model.device))
    opt = torch.optim.AdamW([r], lr=cfg.lr, betas=cfg.betas, weight_decay=0.0, amsgrad=True)
    plateau = Plateau(cfg.patience, cfg.max_lr_reductions, cfg.plateau_window)
    state = RdoRun(r.detach().clone(), opt.state_dict(), plateau, cfg.lr, key)
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state.key != key:
            raise RefusalTLError(f"the checkpoint {checkpoint} belongs to a run with other settings; "
                                 "delete it or use another run directory.")
        r.data.copy_(state.r)
        opt.load_state_dict(state.optimizer)
    total = per_epoch * cfg.epochs if max_steps is None else min(max_steps, per_epoch * cfg.epochs)
    prep, lengths = Prepared(model, pairs, layer, keep=cfg.epochs > 1), pair_lengths(model, pairs)
    bar = tqdm(total=total, initial=state.step, desc="RDO steps", disable=not progress)
    while state.step < total and not state.stopped:
        epoch, k = divmod(state.step, per_epoch)
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        group = order[k * cfg.accumulation:(k + 1) * cfg.accumulation]
        opt.zero_grad()
        t0 = time.perf_counter()
        means = step_losses(model, r, alpha, layer, pairs, group, prep, lengths, cfg)
        r.grad = tangent(r.grad, r.detach())
        torch.nn.utils.clip_grad_norm_([r], cfg.clip)
        opt.step()
        with torch.no_grad():
            r.data = _project_constraints(r.data, constraints)
            r.data /= r.data.norm()
        train_loss = sum(means.values())  # unweighted, as the plateau rule and selection use it
        event = state.plateau.step(train_loss)
        if event == "reduce":
            for g in opt.param_groups:
                g["lr"] /= 10
        state.stopped = event == "stop"
        state.lr = opt.param_groups[0]["lr"]
        state.step += 1
        state.history.append({"step": state.step, "epoch": epoch, "lr": state.lr, "train_loss": train_loss, **means,
                              "seconds": time.perf_counter() - t0})
        state.vectors.append(r.detach().cpu().clone())
        state.r, state.optimizer = r.detach().clone(), opt.state_dict()
        if checkpoint is not None:
            atomic_write(checkpoint, lambda tmp: torch.save(state, tmp))
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{state.lr:.0e}")
    bar.close()
    return state


# ---------------------------------------------------------------- selection


@dataclass
class RdoSelection:
    """The chosen step and, for ``last20``, the scored candidates."""

    step: int  # index into RdoRun.vectors
    how: str
    table: list[dict] = field(default_factory=list)
    relaxed: tuple[str, ...] = ()


def select_rdo(model: RefusalModel, run: RdoRun, alpha: float, layer: int, how: str = "lowest_loss",
               harmful_val: list[str] | None = None, harmless_val: list[str] | None = None, last: int = 20,
               kl_threshold: float = 0.1, induce_threshold: float = 0.0, batch_size: int = 16) -> RdoSelection:
    """Pick one trained vector (SPEC E).

    ``lowest_loss`` (default, official): argmin of the unweighted train loss.
    ``last20`` (the authors' code): score the last ``last`` vectors, scaled by α, with
    Arditi's bypass / induce / KL on the validation sets; keep KL ≤ 0.1 and induce ≥ 0 (no
    layer pruning) and take the lowest bypass. As for DIM, when no vector reaches
    induce ≥ 0 the induce filter is dropped and recorded in ``relaxed``; when none passes
    the KL filter either, the lowest-loss vector is used and recorded.
    """
    if how == "lowest_loss":
        return RdoSelection(run.lowest_loss_step, how)
    if how != "last20":
        raise RefusalTLError(f"unknown RDO selection {how!r}: choose lowest_loss or last20.")
    if not harmful_val or not harmless_val:
        raise RefusalTLError("last20 selection needs harmful and harmless validation prompts.")
    from refusal_tl.selection import Scorer

    scorer = Scorer(model, harmful_val, harmless_val, batch_size)
    rows = []
    first = max(0, len(run.vectors) - last)
    for i in range(first, len(run.vectors)):
        v = alpha * run.vectors[i].to(model.device)
        kl, induce = scorer.kl(v), scorer.induce(v, layer)
        rows.append(dict(step=i, bypass=scorer.bypass(v), induce=induce, kl=kl))
    ok_kl = [row for row in rows if not math.isnan(row["kl"]) and row["kl"] <= kl_threshold]
    ok = [row for row in ok_kl if row["induce"] >= induce_threshold]
    relaxed: tuple[str, ...] = ()
    if not ok and ok_kl:
        ok, relaxed = ok_kl, ("induce",)
        log.warning("No RDO vector reached induce >= %s; selecting without the induce filter.", induce_threshold)
    if not ok:
        log.warning("No RDO vector passed KL <= %s; using the lowest-loss vector.", kl_threshold)
        return RdoSelection(run.lowest_loss_step, how, rows, ("induce", "kl"))
    best = min(ok, key=lambda row: row["bypass"])
    return RdoSelection(best["step"], how, rows, relaxed)
