"""GCG suffixes with a direction-suppression term (paper §6, Fig. 9; docs/algorithms.md §9).

Context: greedy coordinate gradient (Zou et al. 2023) optimises an adversarial suffix,
``prompt + " " + suffix``, so that the model starts its answer with a target text. The
paper adds a term that pushes the residual stream h at one layer and the last template token
off a refusal direction r̂:

    L(suffix) = CE(target | chat(prompt + " " + suffix)) + w_aux · (h · r̂)²

Each step: the gradient of L with respect to the one-hot suffix tokens, ``search_width``
candidates each changing one position to one of its ``topk`` most promising allowed tokens
(:mod:`refusal_tl.gcg.tokens`), the candidates' losses in batches, the best kept (a step never
raises the loss of the kept suffix).

**Only what changes is computed** (:class:`SuffixLoss`): the chat prefix and the prompt before
the suffix are prefilled once into a KV cache; every forward starts at the suffix, and the
unembedding runs only at the positions that predict the target. The auxiliary term reads h
with the same record hook as the cosine traces (:mod:`refusal_tl.repind.traces`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformers import DynamicCache

from refusal_tl.model import RefusalModel
from refusal_tl.repind.traces import trace_hooks


@dataclass
class Problem:
    """One prompt's token pieces: ``before`` (chat prefix + prompt + " "), the suffix goes
    next, then ``after`` (the post-instruction tokens) and ``target``."""

    before: Int[Tensor, "1 b"]
    after: Int[Tensor, "1 a"]
    target: Int[Tensor, "1 t"]


def make_problem(model: RefusalModel, prompt: str, target: str) -> Problem:
    enc = lambda s: model.tokenizer(s, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
    after = torch.tensor([model.chat.eoi_ids], device=model.device)
    return Problem(enc(model.chat.prefix + prompt + " "), after, enc(target))


class SuffixLoss:
    """L(suffix) of one :class:`Problem` for a direction and layer; the part before the suffix
    is prefilled once. ``direction=None`` or ``aux_weight=0`` gives plain GCG."""

    def __init__(self, model: RefusalModel, problem: Problem, direction: Tensor | None, layer: int,
                 aux_weight: float = 10.0):
        self.model, self.problem, self.layer, self.aux_weight = model, problem, layer, aux_weight
        self.embed = model.hf_model.get_input_embeddings()
        self.unit = None if direction is None else (direction / direction.norm()).float().to(model.device)
        with torch.no_grad():
            self.cache = DynamicCache(config=model.hf_model.config)
            model.hf_model(problem.before, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
            self.after_emb = self.embed(problem.after)
            self.target_emb = self.embed(problem.target)

    @property
    def vocab(self) -> int:
        return self.embed.weight.shape[0]

    def _forward(self, suffix_emb: Float[Tensor, "batch n d_model"], with_target: bool, record: bool
                 ) -> tuple[Tensor, Tensor | None]:
        """Run suffix + post-instruction tokens (+ target) from a copy of the prefilled prompt;
        the logits at the positions predicting the target and h at the last template token."""
        b, n = suffix_emb.shape[:2]
        parts = [suffix_emb, self.after_emb.expand(b, -1, -1)]
        parts += [self.target_emb.expand(b, -1, -1)] if with_target else []
        emb = torch.cat(parts, dim=1)
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(b)
        mask = torch.ones(b, self.problem.before.shape[1] + emb.shape[1], dtype=torch.long, device=emb.device)
        store: dict[int, Tensor] = {}
        last = torch.full((b,), n + self.problem.after.shape[1] - 1, device=emb.device)  # the last template token
        hooks = trace_hooks(store, [self.layer], last) if record else []
        keep = self.problem.target.shape[1] + 1 if with_target else 1
        with self.model.bridge.hooks(fwd_hooks=hooks):
            logits = self.model.hf_model(inputs_embeds=emb, attention_mask=mask, past_key_values=cache, use_cache=True,
                                         logits_to_keep=keep).logits[:, :-1]
        return logits, store.get(self.layer)

    def terms(self, suffix_emb: Float[Tensor, "batch n d_model"]) -> tuple[Tensor, Tensor]:
        """Per-row CE of the target and (h·r̂)² for suffix embeddings (grad flows if it needs to)."""
        logits, h = self._forward(suffix_emb, with_target=True, record=self.unit is not None)
        labels = self.problem.target.expand(suffix_emb.shape[0], -1)
        ce = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none").mean(1)
        aux = (h.float() @ self.unit).square() if self.unit is not None else torch.zeros_like(ce)
        return ce, aux

    @torch.no_grad()
    def resid(self, ids: Int[Tensor, " n"]) -> Float[Tensor, " d_model"]:
        """h: the residual stream entering block ``layer`` at the last template token."""
        return self._forward(self.embed(ids)[None], with_target=False, record=True)[1][0].float()

    def gradient(self, ids: Int[Tensor, " n"]) -> tuple[Float[Tensor, "n vocab"], float]:
        """∂L/∂(one-hot suffix) and L at ``ids``."""
        with torch.enable_grad():
            onehot = F.one_hot(ids, self.vocab).to(self.embed.weight.dtype).requires_grad_(True)
            ce, aux = self.terms((onehot @ self.embed.weight)[None])
            loss = (ce + self.aux_weight * aux).sum()
            (grad,) = torch.autograd.grad(loss, [onehot])
        return grad, float(loss)

    @torch.no_grad()
    def losses(self, candidates: Int[Tensor, "c n"], batch: int = 64) -> tuple[Tensor, Tensor, Tensor]:
        """L, CE and aux of every candidate suffix, ``batch`` at a time."""
        parts = [self.terms(self.embed(candidates[i:i + batch])) for i in range(0, len(candidates), batch)]
        ce, aux = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return ce + self.aux_weight * aux, ce, aux
