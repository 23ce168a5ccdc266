"""The GCG loop for one prompt: gradient → candidates → batched losses → keep the best; a
JSON checkpoint after every step, so an interrupted attack resumes at the step it lost."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from tqdm.auto import tqdm

from refusal_tl.errors import RefusalTLError
from refusal_tl.gcg.attack import SuffixLoss
from refusal_tl.gcg.config import GcgConfig
from refusal_tl.gcg.tokens import sample_candidates, stable
from refusal_tl.io import read_json, write_json
from refusal_tl.optim.checkpoint import claim_checkpoint


@dataclass
class Attack:
    """The kept suffix after each step and the loss history (``loss``, ``ce``, ``aux`` per step)."""

    ids: list[int]
    history: list[dict] = field(default_factory=list)
    key: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        return len(self.history)


def init_ids(tokenizer, cfg: GcgConfig) -> Int[Tensor, " n"]:
    """The initial suffix: ``suffix_len`` copies of ``suffix_init`` separated by spaces
    ("! ! … !", nanoGCG's convention), so it re-tokenises to itself; "!!!…!" would merge into
    a few tokens on BPE tokenizers and leave no stable candidate."""
    text = " ".join([cfg.suffix_init] * cfg.suffix_len)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) != cfg.suffix_len or tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids != ids:
        raise RefusalTLError(f"the initial suffix {text[:20]!r}… is {len(ids)} tokens, not {cfg.suffix_len}, or does "
                             "not re-tokenise to itself; pick another suffix_init such as '!' or 'x'.")
    return torch.tensor(ids)


def run_attack(loss: SuffixLoss, tokenizer, allowed: Bool[Tensor, " vocab"], cfg: GcgConfig, key: dict,
               checkpoint: str | Path | None = None, progress: bool = True, desc: str = "GCG") -> Attack:
    """Optimise one suffix for ``cfg.steps`` steps (resuming from ``checkpoint`` if its key matches).

    The step's best candidate replaces the kept suffix only when its loss is not higher, so
    the kept loss never rises. Each step's randomness is seeded by (seed, step).
    """
    key = json.loads(json.dumps({**key, "gcg": cfg.key()}, default=str))
    attack = Attack(init_ids(tokenizer, cfg).tolist(), key=key)
    if checkpoint is not None:  # another attack's checkpoint is kept aside, not an error
        claim_checkpoint(checkpoint, key, lambda path: read_json(path, "GCG checkpoint").get("key"))
    if checkpoint is not None and Path(checkpoint).is_file():
        saved = read_json(checkpoint, "GCG checkpoint")
        attack = Attack(saved["ids"], saved["history"], key)
    device = loss.embed.weight.device
    ids = torch.tensor(attack.ids, device=device)
    bar = tqdm(total=cfg.steps, initial=attack.step, desc=desc, disable=not progress, leave=False)
    while attack.step < cfg.steps:
        grad, value = loss.gradient(ids)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + attack.step)
        cands = sample_candidates(ids, grad, cfg.search_width, cfg.topk, allowed, cfg.n_replace, gen)
        cands = cands[stable(cands, tokenizer).to(cands.device)]
        row = {"step": attack.step + 1, "loss": value, "ce": None, "aux": None, "candidates": len(cands)}
        if len(cands):
            total, ce, aux = loss.losses(cands, cfg.eval_batch)
            best = int(total.argmin())
            if float(total[best]) <= value:
                ids = cands[best]
                row.update(loss=float(total[best]), ce=float(ce[best]), aux=float(aux[best]))
        if row["ce"] is None:  # nothing better (or no stable candidate): the kept suffix stays
            _, ce, aux = loss.losses(ids[None])
            row.update(ce=float(ce[0]), aux=float(aux[0]))
        attack.ids = ids.tolist()
        attack.history.append({**row, "suffix": tokenizer.decode(attack.ids)})
        if checkpoint is not None:
            write_json(checkpoint, {"key": key, "ids": attack.ids, "history": attack.history})
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
    bar.close()
    return attack
