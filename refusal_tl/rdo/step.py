"""The RDO step: Algorithm 1's loss on a group of examples, computing only what depends on r.

Context: a unit direction r is trained by projected gradient descent on the sphere so
that ablating it makes the model answer harmful prompts (L_abl), adding α·r̂ at the DIM
layer makes it refuse harmless ones (L_add), and ablating it leaves harmless behaviour
unchanged (L_ret). Losses are in :mod:`refusal_tl.rdo.losses`, targets in
:mod:`refusal_tl.rdo.targets`; the training loop is the shared sphere trainer
(:mod:`refusal_tl.optim`), the run (CLI and notebook entry point) :mod:`refusal_tl.rdo.run`.

**The step computes only what depends on r** (:func:`step_losses`):

- the clean retain logits are computed once per prompt (:class:`Prepared`);
- the addition loss restarts from the residual stream cached at ``l_add``: blocks
  ``0 … l_add−1`` do not see r and run once per prompt (:func:`~refusal_tl.steer.forward.logits_from`);
- the unembedding runs only over the target window (last template token + targets);
- the examples of a step are sorted by length and run ``micro_batch`` at a time, with
  per-example loss means, so the loss equals the official micro-batch-1 loss.

:func:`reference_step` is the straightforward step (micro-batch 1, full forwards, full
logits, clean logits recomputed); tests and ``benchmarks/bench_rdo.py`` check both give
the same losses and gradient.

Every term reads the logits *before* a final soft-cap (Gemma 2; the official code does the
same), so the efficient and the straightforward step agree on every model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.model import RefusalModel
from refusal_tl.rdo.config import RdoConfig
from refusal_tl.rdo.losses import retain_kl, total_loss
from refusal_tl.steer.forward import layer_inputs, logits_from, uncapped, window_logits
from refusal_tl.steer.hooks import ablation_hooks, addition_hooks, row_hooks
from refusal_tl.steer.metrics import target_cross_entropy
from refusal_tl.steer.windows import SOURCE, TERMS, TrainingPair, buckets, column, left_pad, windows


class Prepared:
    """What a step needs that does not depend on r, computed once per prompt (no grad).

    - ``clean[i]``: the retain window's logits without intervention, ``[w_i, d_vocab]``;
    - ``resid[i]``: the residual stream entering block ``l_add`` on the refusal pair, ``[n_i, d_model]``.

    Kept on the CPU (float32, about 18 MB per example for Qwen's 152k vocabulary) when
    ``keep`` (several epochs); otherwise dropped after the step that uses them.
    """

    def __init__(self, model: RefusalModel, pairs: list[TrainingPair], layer: int, keep: bool = True):
        self.model, self.pairs, self.layer, self.keep = model, pairs, layer, keep
        self.clean: dict[int, Tensor] = {}
        self.resid: dict[int, Tensor] = {}

    @torch.no_grad()
    def ensure(self, idx: list[int]) -> None:
        todo = [i for i in idx if i not in self.clean]
        if not todo:
            return
        w = windows(self.model, *column(self.pairs, todo, "retain"))
        logits = window_logits(self.model, w.batch, w.width, capped=False).float()
        n_win = w.window.sum(1).tolist()
        w_add = windows(self.model, *column(self.pairs, todo, "refusal"), share_prefix=False)
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


def term_losses(model: RefusalModel, r: Float[Tensor, "*rows d_model"], name: str, alpha: float, layer: int,
                pairs: list[TrainingPair], idx: list[int], prep: Prepared,
                retain_mode: str = "paper") -> Float[Tensor, " batch"]:
    """Per-example loss of one term (``abl``/``add``/``ret``) for the examples ``idx``; differentiable in r.

    ``r`` is one direction shared by the examples (``[d_model]``) or one per example
    (``[len(idx), d_model]``, the cone samples): per-row hooks, whole prompts (no shared prefix).
    """
    per_row = r.dim() == 2
    src = column(pairs, idx, SOURCE[name])
    if name == "add":
        w = windows(model, *src, share_prefix=False)
        resid = left_pad([prep.resid[i] for i in idx], w.batch.ids.shape[1]).to(model.device, model.dtype)
        _, block_kwargs = layer_inputs(model, w.batch, 0)  # masks and rotary embeddings only
        hooks = (row_hooks("add", r, model.n_layers, layer, alpha) if per_row
                 else addition_hooks(alpha * r / r.norm(), layer))
        return target_cross_entropy(logits_from(model, resid, block_kwargs, layer, w.width, hooks), w.labels)
    w = windows(model, *src, share_prefix=not per_row)
    hooks = row_hooks("ablate", r, model.n_layers) if per_row else ablation_hooks(r, model.n_layers)
    logits = window_logits(model, w.batch, w.width, hooks, capped=False)
    if name == "abl":
        return target_cross_entropy(logits, w.labels)
    clean = left_pad([prep.clean[i] for i in idx], w.width).to(model.device)
    return retain_kl(clean, logits, retain_mode, mask=w.window)


TermFn = Callable[[str, list[int]], dict[str, Tensor]]


def step_losses(model: RefusalModel, r: Float[Tensor, "*one d_model"], alpha: float, layer: int,
                pairs: list[TrainingPair], group: list[int], prep: Prepared, lengths: dict[str, list[int]],
                cfg: RdoConfig, backward: bool = True, terms: TermFn | None = None) -> dict[str, float]:
    """One optimizer step's loss terms over ``group``, averaged over its examples.

    ``r`` is the direction, ``[d_model]`` or the trainer's ``[1, d_model]`` parameter. With
    ``backward`` the weighted loss (each micro-loss divided by ``len(group)``, as gradient
    accumulation does) is back-propagated into ``r.grad`` forward by forward, so at most one
    micro-batch graph is alive at a time.

    ``terms(name, idx)`` computes the per-example values of the forward ``name`` (``abl``,
    ``add``, ``ret``) as ``{term: values}``; a forward may give several terms (RepInd reads
    its traces from the ablation forward). Default: the three RDO terms.
    """
    prep.ensure(group)
    weights = cfg.loss_weights
    custom = terms is not None  # a custom forward may carry terms of other names: keep its graph
    terms = terms or (lambda name, idx: {name: term_losses(model, r.reshape(-1), name, alpha, layer, pairs, idx,
                                                           prep, cfg.retain_kl)})
    means: dict[str, float] = {}
    for name in TERMS:
        for idx in buckets(lengths[name], group, cfg.micro_batch):
            with torch.set_grad_enabled(backward and (custom or weights.get(name, 0.0) != 0.0)):
                values = terms(name, idx)
                loss = sum(weights.get(k, 0.0) * v.sum() for k, v in values.items()) / len(group)
                if backward and loss.requires_grad:
                    loss.backward()
            for k, v in values.items():
                means[k] = means.get(k, 0.0) + float(v.detach().sum()) / len(group)
    prep.release(group)
    return means


def reference_step(model: RefusalModel, param: Float[Tensor, "*one d_model"], alpha: float, layer: int,
                   pairs: list[TrainingPair], group: list[int], cfg: RdoConfig,
                   backward: bool = True) -> dict[str, float]:
    """The straightforward step, for tests and the benchmark: micro-batch 1, three full
    forwards with full logits per example, the clean retain forward recomputed every time."""
    L = model.n_layers
    means = {name: 0.0 for name in TERMS}

    def full(name, i, hooks):
        w = windows(model, *column(pairs, [i], SOURCE[name]), share_prefix=False, whole=True)
        with model.bridge.hooks(fwd_hooks=list(hooks)), uncapped(model):
            return model.bridge(w.batch.ids, attention_mask=w.batch.mask), w

    for i in group:
        with torch.set_grad_enabled(backward):
            r = param.reshape(-1)
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
