"""The RepInd step: the RDO step plus λ_ind·L_ind, computing only what depends on r.

Context: docs/algorithms.md §8. L_ind compares, at the last prompt token of each harmful train
prompt (or averaged over its tokens, ``tokens="all"``) and layers 0 … ⌊0.9·L⌋−1, four cosine
traces per earlier direction v ∈ V. Three of them do not depend on r's forward: the clean x and
x̃ with each v ablated. They are computed once per prompt (:class:`TraceCache`, no grad). The
fourth, x̃ with r ablated, is the residual stream of the **RDO ablation forward** itself: that
forward runs the harmful prompt (plus its target, which causal attention hides from the prompt
positions) with r ablated at every layer, so :func:`repind_terms` records x̃_abl(r) there with
:func:`~refusal_tl.repind.traces.trace_hooks` and L_ind costs no extra forward at all.

:func:`reference_repind_step` is the straightforward step (the official one, with clipping):
the RDO reference step plus three forwards per example and v (clean, r ablated, v ablated);
tests and ``benchmarks/bench_repind.py`` check both give the same losses and gradient.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from refusal_tl.model import RefusalModel
from refusal_tl.rdo.step import Prepared, reference_step, step_losses, term_losses
from refusal_tl.repind.config import RepIndConfig
from refusal_tl.repind.losses import repind_from_resid
from refusal_tl.repind.traces import resid_traces, token_mask, trace_hooks, user_token_counts
from refusal_tl.steer.forward import window_logits
from refusal_tl.steer.hooks import ablation_hooks
from refusal_tl.steer.metrics import target_cross_entropy
from refusal_tl.steer.windows import TrainingPair, column, windows


class TraceCache:
    """The r-independent traces per harmful train prompt (no grad, CPU): ``clean[i]`` ``[layers, d]``
    and ``ablated[i]`` ``[|V|, layers, d]`` (x̃ with each v ablated) at its last token, or with
    ``tokens="all"`` ``[layers, n_i, d]`` and ``[|V|, layers, n_i, d]`` over its n_i tokens after the
    system prompt (:func:`~refusal_tl.repind.traces.user_token_counts`).

    At most ``max_bytes`` are kept (oldest first out, recomputed when asked again): token traces
    of a 7B model over a thousand prompts would not fit in memory, and each epoch reads each once.
    """

    def __init__(self, model: RefusalModel, pairs: list[TrainingPair], V: Tensor, layers: list[int],
                 batch_size: int = 16, tokens: str = "last", max_bytes: int = 4 << 30):
        self.model, self.pairs, self.V, self.layers, self.batch_size = model, pairs, V, layers, batch_size
        self.max_bytes = max_bytes
        self.counts = (user_token_counts(model, [p.answer.prompt for p in pairs]) if tokens == "all"
                       else torch.ones(len(pairs), dtype=torch.long))
        self.tokens = tokens
        self.clean: dict[int, Tensor] = {}
        self.ablated: dict[int, Tensor] = {}

    def width(self, idx: list[int]) -> int | None:
        """The token window of the examples ``idx`` (None: the last token only)."""
        return None if self.tokens == "last" else int(self.counts[idx].max())

    def mask(self, idx: list[int], device) -> Tensor | None:
        return None if self.tokens == "last" else token_mask(self.counts[idx], self.width(idx)).to(device)

    @torch.no_grad()
    def ensure(self, idx: list[int]) -> None:
        todo = [i for i in idx if i not in self.clean]
        if not todo:
            return
        for k in range(0, len(todo), self.batch_size):
            part = todo[k:k + self.batch_size]
            batch = self.model.chat.tokenize(column(self.pairs, part, "answer")[0]).to(self.model.device)
            width = self.width(part)
            clean = resid_traces(self.model, batch, self.layers, tokens=width).float().cpu()
            abl = torch.stack([resid_traces(self.model, batch, self.layers, v.to(self.model.device), tokens=width)
                               .float().cpu() for v in self.V], dim=1)
            for row, i in enumerate(part):
                n = int(self.counts[i])  # the row's own tokens, the last n of the window
                self.clean[i] = (clean[row] if width is None else clean[row, :, -n:]).clone()
                self.ablated[i] = (abl[row] if width is None else abl[row, :, :, -n:]).clone()
        self._evict(keep=set(idx))

    def _evict(self, keep: set[int]) -> None:
        size = lambda i: (self.clean[i].numel() + self.ablated[i].numel()) * 4
        total = sum(size(i) for i in self.clean)
        for i in [i for i in self.clean if i not in keep]:  # insertion order: oldest first
            if total <= self.max_bytes:
                break
            total -= size(i)
            del self.clean[i], self.ablated[i]

    def get(self, idx: list[int], device) -> tuple[Tensor, Tensor]:
        """Clean and v-ablated traces of ``idx``, token windows right-aligned to :meth:`width`."""
        self.ensure(idx)
        width = self.width(idx)
        if width is None:
            return (torch.stack([self.clean[i] for i in idx]).to(device),
                    torch.stack([self.ablated[i] for i in idx]).to(device))
        pad = lambda t: torch.nn.functional.pad(t, (0, 0, width - t.shape[-2], 0))
        return (torch.stack([pad(self.clean[i]) for i in idx]).to(device),
                torch.stack([pad(self.ablated[i]) for i in idx]).to(device))


def ablation_with_traces(model: RefusalModel, r: Float[Tensor, " d_model"], pairs: list[TrainingPair], idx: list[int],
                         layers: list[int], tokens: int | None = None
                         ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch layers *tokens d_model"]]:
    """L_abl per example and x̃_abl(r) at each prompt's last token (or the ``tokens`` positions
    ending there), from one forward."""
    w = windows(model, *column(pairs, idx, "answer"))
    n_target = w.window.sum(1) - 1  # the window is the last template token plus the targets
    positions = w.batch.ids.shape[1] - 1 - n_target
    store: dict[int, Tensor] = {}
    hooks = ablation_hooks(r, model.n_layers) + trace_hooks(store, layers, positions, ablate=r, tokens=tokens)
    logits = window_logits(model, w.batch, w.width, hooks, capped=False)
    return target_cross_entropy(logits, w.labels), torch.stack([store[l] for l in layers], dim=1)


def repind_terms(model: RefusalModel, r: Tensor, alpha: float, layer: int, pairs: list[TrainingPair], prep: Prepared,
                 cache: TraceCache, cfg: RepIndConfig):
    """The ``terms`` callback of :func:`~refusal_tl.rdo.step.step_losses`: RDO's terms, with
    ``ind`` read from the ablation forward."""
    def terms(name: str, idx: list[int]) -> dict[str, Tensor]:
        vec = r.reshape(-1)
        if name != "abl" or cfg.ind_weight == 0:
            return {name: term_losses(model, vec, name, alpha, layer, pairs, idx, prep, cfg.retain_kl)}
        abl, abl_r = ablation_with_traces(model, vec, pairs, idx, cache.layers, cache.width(idx))
        clean, abl_v = cache.get(idx, abl_r.device)
        ind = repind_from_resid(vec, cache.V.to(abl_r.device), clean, abl_v, abl_r, cache.mask(idx, abl_r.device))
        return {"abl": abl, "ind": ind}
    return terms


def repind_step_losses(model: RefusalModel, r: Tensor, alpha: float, layer: int, pairs: list[TrainingPair],
                       group: list[int], prep: Prepared, cache: TraceCache, lengths: dict[str, list[int]],
                       cfg: RepIndConfig, backward: bool = True) -> dict[str, float]:
    """One RepInd optimizer step's terms (``abl``, ``ind``, ``add``, ``ret``) averaged over ``group``."""
    terms = repind_terms(model, r, alpha, layer, pairs, prep, cache, cfg)
    return step_losses(model, r, alpha, layer, pairs, group, prep, lengths, cfg, backward, terms)


def reference_repind_step(model: RefusalModel, param: Tensor, alpha: float, layer: int, pairs: list[TrainingPair],
                          group: list[int], V: Tensor, cfg: RepIndConfig, backward: bool = True) -> dict[str, float]:
    """The straightforward step: :func:`~refusal_tl.rdo.step.reference_step` plus, per example
    and v, three full forwards of the harmful prompt (clean, r ablated, v ablated)."""
    means = reference_step(model, param, alpha, layer, pairs, group, cfg, backward)
    layers = cfg.ind_layers(model.n_layers)
    means["ind"] = 0.0
    for i in group:
        prompt = pairs[i].answer.prompt
        batch = model.chat.tokenize([prompt], share_prefix=False).to(model.device)
        n = int(user_token_counts(model, [prompt])[0]) if cfg.tokens == "all" else None
        mask = None if n is None else torch.ones(1, n, device=model.device)
        with torch.set_grad_enabled(backward):
            r = param.reshape(-1)
            total = 0.0
            for v in V.to(model.device):
                clean = resid_traces(model, batch, layers, tokens=n)
                abl_r = resid_traces(model, batch, layers, r, tokens=n)
                abl_v = resid_traces(model, batch, layers, v, tokens=n)
                total = total + repind_from_resid(r, v[None], clean, abl_v[:, None], abl_r, mask)
            if backward:
                (cfg.ind_weight * total.sum() / len(group)).backward()
        means["ind"] += float(total.detach().sum()) / len(group)
    return means
