"""The GCG run (docs/algorithms.md §9): DIM-ablated targets → one attack per prompt → the
suffixed prompt's completion and its cosine trace against the plain prompt's (Fig. 9).

:func:`run_gcg` serves the CLI (``refusal-tl gcg``); :func:`run_gcg_pair` (with the direction term
and without it, plain GCG) the reproduction and notebook 05. A run writes ``OUT/results.jsonl``
(one :class:`GcgRow` per finished prompt), ``OUT/targets.json`` and ``OUT/checkpoints/{i:03d}.json``
(the attack after every step): a rerun skips finished prompts made with the same settings and
resumes the one in flight at its last step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import pandas as pd

from refusal_tl import plotting
from refusal_tl.gcg.attack import SuffixLoss, make_problem
from refusal_tl.gcg.config import GcgConfig
from refusal_tl.gcg.search import run_attack
from refusal_tl.gcg.tokens import allowed_tokens
from refusal_tl.geometry import RefusalDirection
from refusal_tl.io import ensure_dir, json_digest, read_json, tensor_digest, write_json, write_text
from refusal_tl.model import RefusalModel
from refusal_tl.optim import check_checkpoints
from refusal_tl.repind.traces import cosine_traces
from refusal_tl.steer.generation import generate
from refusal_tl.steer.hooks import ablation_hooks
from refusal_tl.steer.metrics import is_refusal


@dataclass
class GcgRow:
    """One attacked prompt: the suffix found, the loss per step (total, target CE, aux term), the
    Fig. 9 traces cos(r̂, h) over layers 0…L−1 for the plain and the suffixed prompt, the answer to
    the suffixed prompt and whether the judge calls it a refusal."""

    prompt: str
    suffix: str
    target: str
    layer: int  # the auxiliary term's layer
    aux_weight: float
    losses: list[float]
    ce: list[float]
    aux: list[float]
    cos_plain: list[float]
    cos_suffixed: list[float]
    completion: str
    refused: bool
    dtype: str | None = None
    key: str | None = None  # the settings it was made with (a rerun with others recomputes it)

    @property
    def cos_drop(self) -> float | None:
        """Relative drop of cos(r̂, h) at the aux layer from the plain to the suffixed prompt
        (None if the plain cosine is 0)."""
        plain = self.cos_plain[self.layer]
        return 1 - self.cos_suffixed[self.layer] / plain if plain else None

    @classmethod
    def from_dict(cls, d: dict) -> "GcgRow":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class GcgResult:
    """GCG with the direction term (``aux``) and without it (``plain``) on the same prompts."""

    aux: list[GcgRow]
    plain: list[GcgRow]
    config: GcgConfig

    @property
    def runs(self) -> dict[str, list[GcgRow]]:
        return {f"w_aux = {self.config.aux_weight:g}": self.aux, "w_aux = 0 (plain GCG)": self.plain}

    def mean_cos_drop(self) -> dict[str, float]:
        """Per run, the mean relative drop of cos(r̂, h) at the aux layer from plain to suffixed prompts."""
        drops = {name: [r.cos_drop for r in rows if r.cos_drop is not None] for name, rows in self.runs.items()}
        return {name: sum(d) / len(d) if d else 0.0 for name, d in drops.items()}

    def summary_table(self) -> pd.DataFrame:
        return pd.DataFrame([dict(run=name, prompt=r.prompt[:80], suffix=r.suffix, cos_drop=r.cos_drop,
                                  refused=r.refused, completion=r.completion[:80])
                             for name, rows in self.runs.items() for r in rows])

    def figures(self, baseline: float | None = None) -> dict:
        """Losses, the Fig. 9 traces, the direction term's effect (``baseline``: the share of plain
        prompts refused, when known) and the suffixes with their answers."""
        runs = self.runs
        return {"gcg_losses": plotting.gcg_losses(runs),
                "gcg_traces_fig9": plotting.gcg_traces(runs, self.aux[0].layer),
                "gcg_aux_effect": plotting.aux_effect(runs, None if baseline is None else 1 - baseline),
                "gcg_suffixes": plotting.suffix_table(self.aux)}

    def to_dict(self) -> dict:
        return {"aux": [asdict(r) for r in self.aux], "plain": [asdict(r) for r in self.plain],
                "config": self.config.to_dict()}


def dim_targets(model: RefusalModel, dim: RefusalDirection, prompts: list[str], cfg: GcgConfig,
                out: Path) -> list[str]:
    """The first ``target_chars`` characters of each prompt's completion with DIM ablated (cached)."""
    path = out / "targets.json"
    key = json_digest({"dim": tensor_digest(dim.vector), "prompts": prompts, "chars": cfg.target_chars,
                       "model": model.key})
    saved = read_json(path, "GCG target cache") if path.is_file() else {}
    if saved.get("key") == key:
        return saved["targets"]
    hooks = ablation_hooks(dim.vector.to(model.device), model.n_layers)
    texts = generate(model, prompts, max(cfg.target_chars, 16), hooks, desc="targets (DIM ablated)")
    targets = [t[:cfg.target_chars] or "Sure" for t in texts]
    write_json(path, {"key": key, "targets": targets})
    return targets


def read_rows(path: Path) -> list[GcgRow]:
    """The rows of a ``results.jsonl`` (none if it does not exist)."""
    if not path.is_file():
        return []
    return [GcgRow.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def run_gcg(cfg: GcgConfig, model: RefusalModel, direction: RefusalDirection, dim: RefusalDirection,
            prompts: list[str], out: str | Path, progress: bool = True) -> list[GcgRow]:
    """Attack every prompt (first ``cfg.n_prompts``) and write one results row per prompt."""
    model.check_config(cfg)
    direction.check_width(model.d_model)
    layer = model.check_layer(cfg.layer(model.n_layers))
    out = ensure_dir(Path(out))
    check_checkpoints((out / "checkpoints").glob("*.json"))  # a corrupt one fails now, not after the targets
    prompts = prompts[:cfg.n_prompts]
    targets = dim_targets(model, dim, prompts, cfg, out)
    allowed = allowed_tokens(model.tokenizer, model.hf_model.get_input_embeddings().weight.shape[0])
    vec = direction.vector.float().to(model.device)
    rows = {r.prompt: r for r in read_rows(out / "results.jsonl")}
    for i, (prompt, target) in enumerate(zip(prompts, targets)):
        key = {"prompt": prompt, "target": target, "direction": tensor_digest(vec), "layer": layer,
               "model": model.key}
        row_key = json_digest({**key, "gcg": cfg.key(), "steps": cfg.steps, "max_new_tokens": cfg.max_new_tokens})
        if prompt in rows and rows[prompt].key == row_key:
            continue
        loss = SuffixLoss(model, make_problem(model, prompt, target), vec if cfg.aux_weight > 0 else None, layer,
                          cfg.aux_weight)
        attack = run_attack(loss, model.tokenizer, allowed, cfg, key, out / "checkpoints" / f"{i:03d}.json", progress,
                            desc=f"GCG {i + 1}/{len(prompts)}")
        suffix = model.tokenizer.decode(attack.ids)
        adv = f"{prompt} {suffix}"
        completion = generate(model, [adv], cfg.max_new_tokens, desc=None)[0]
        plain, suffixed = (cosine_traces(model, [p], vec)[0].tolist() for p in (prompt, adv))
        rows[prompt] = GcgRow(prompt, suffix, target, layer, cfg.aux_weight, [h["loss"] for h in attack.history],
                              [h["ce"] for h in attack.history], [h["aux"] for h in attack.history], plain, suffixed,
                              completion, is_refusal(completion), model.dtype_name, row_key)
        write_text(out / "results.jsonl", "".join(json.dumps(asdict(r)) + "\n" for r in rows.values()))
    return [rows[p] for p in prompts]


def run_gcg_pair(cfg: GcgConfig, model: RefusalModel, direction: RefusalDirection, dim: RefusalDirection,
                 prompts: list[str], run_dir: str | Path, progress: bool = True) -> GcgResult:
    """GCG with the direction term (``RUN/gcg-aux``) and plain GCG, ``aux_weight=0`` (``RUN/gcg-plain``)."""
    run_dir = Path(run_dir)
    return GcgResult(run_gcg(cfg, model, direction, dim, prompts, run_dir / "gcg-aux", progress),
                     run_gcg(replace(cfg, aux_weight=0.0), model, direction, dim, prompts, run_dir / "gcg-plain",
                             progress), cfg)
