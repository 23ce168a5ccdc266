"""RDO training targets (docs/algorithms.md §4), generated once and cached on disk.

- **t_answer**: the harmful prompt's greedy completion with the DIM direction ablated
  (30 tokens): what the model says once refusal is switched off;
- **t_refusal**: the harmless prompt's completion with +α·r̂_DIM added at the DIM layer
  (30 tokens, cut at the first "."): a refusal;
- **t_retain**: the harmless prompt's plain completion (29 tokens): behaviour to keep.

The intervention is applied on every generated token (the official code skips it on the
last one; not copied). Texts are decoded with ``skip_special_tokens=True`` and appended to
the prompt string; when re-tokenising ``prompt + target`` does not reproduce the generated
tokens (*re-tokenisation drift*) the example is flagged, never silently shifted: the loss
masks are built from the re-tokenised target, so a window can never slide into the prompt.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from refusal_tl.geometry import RefusalDirection
from refusal_tl.io import json_digest, read_json, write_json
from refusal_tl.model import RefusalModel
from refusal_tl.steer.generation import generate_ids
from refusal_tl.steer.hooks import ablation_hooks, addition_hooks

LENGTHS = {"answer": 30, "refusal": 30, "retain": 29}


@dataclass
class TargetSet:
    """Prompts, target texts, and whether each target re-tokenises to what was generated."""

    prompts: list[str]
    targets: list[str]
    drift: list[bool]


@dataclass
class RdoTargets:
    answer: TargetSet
    refusal: TargetSet
    retain: TargetSet
    key: dict

    def summary(self) -> dict:
        return {name: {"n": len(ts.prompts), "drifted": sum(ts.drift)}
                for name, ts in (("answer", self.answer), ("refusal", self.refusal), ("retain", self.retain))}


def target_set(model: RefusalModel, prompts: list[str], n_tokens: int, hooks, cut_at_period: bool = False,
               batch_size: int = 16, desc: str | None = None) -> TargetSet:
    """Generate targets for ``prompts`` and check each re-tokenises to the generated ids."""
    ids = generate_ids(model, prompts, n_tokens, hooks, batch_size, desc)
    texts = model.tokenizer.batch_decode(ids, skip_special_tokens=True)
    if cut_at_period:
        texts = [t.split(".")[0] for t in texts]
    drift = [drifted(model, p, t, g, cut_at_period) for p, t, g in zip(prompts, texts, ids)]
    return TargetSet(list(prompts), texts, drift)


def drifted(model: RefusalModel, prompt: str, text: str, generated: list[int], prefix: bool = False) -> bool:
    """Does ``prompt + text`` re-tokenise to anything but the prompt's tokens + ``generated``?

    ``prefix``: the text was cut (t_refusal at the first "."), so its tokens need only be a
    prefix of the generation. Special tokens (end of turn) in ``generated`` are ignored.
    """
    special = set(model.tokenizer.all_special_ids)
    prompt_ids = model.chat.tokenize([prompt]).ids[0].tolist()
    full = model.chat.tokenize([prompt], [text]).ids[0].tolist()
    retok, expected = full[len(prompt_ids):], [t for t in generated if t not in special]
    if prefix:
        expected = expected[: len(retok)]
    return full[: len(prompt_ids)] != prompt_ids or retok != expected


def make_targets(model: RefusalModel, dim: RefusalDirection, harmful: list[str], harmless: list[str],
                 batch_size: int = 16, cache_dir: str | Path | None = None) -> RdoTargets:
    """t_answer, t_refusal and t_retain for the prompts, loaded from ``cache_dir`` if cached."""
    key = {**model.key, "lengths": LENGTHS,
           "direction_sha": hashlib.sha256(dim.vector.float().numpy().tobytes()).hexdigest()[:16],
           "layer": dim.layer, "prompts_sha": json_digest([harmful, harmless])}
    path = Path(cache_dir) / f"targets-{json_digest(key)[:10]}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        data = read_json(path, "RDO target cache")
        return RdoTargets(**{k: TargetSet(**data[k]) for k in LENGTHS}, key=data["key"])
    vec = dim.vector.to(model.device)
    L = model.n_layers
    targets = RdoTargets(
        answer=target_set(model, harmful, LENGTHS["answer"], ablation_hooks(vec, L), False, batch_size, "t_answer"),
        refusal=target_set(model, harmless, LENGTHS["refusal"], addition_hooks(vec, dim.layer), True, batch_size,
                           "t_refusal"),
        retain=target_set(model, harmless, LENGTHS["retain"], [], False, batch_size, "t_retain"),
        key=key,
    )
    if path is not None:
        write_json(path, {**{k: asdict(getattr(targets, k)) for k in LENGTHS}, "key": key})
    return targets
