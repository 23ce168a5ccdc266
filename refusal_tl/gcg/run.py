"""The GCG run (docs/algorithms.md §9): DIM-ablated targets → one attack per prompt → the
suffixed prompt's completion and its cosine trace against the plain prompt's (Fig. 9).

One function, :func:`run_gcg`, serves the CLI (``refusal-tl gcg``) and notebook 05. It writes
``OUT/results.jsonl`` (one row per finished prompt: ``prompt``, ``suffix``, ``layer``,
``losses`` per step, ``cos_plain`` and ``cos_suffixed`` over layers 0…L−1, ``completion``,
``refused``), ``OUT/targets.json`` and ``OUT/checkpoints/{i:03d}.json`` (the attack after every
step): a rerun skips finished prompts and resumes the one in flight at its last step.
"""

from __future__ import annotations

import json
from pathlib import Path

from refusal_tl.eval.metrics import is_refusal
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


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run_gcg(cfg: GcgConfig, model: RefusalModel, direction: RefusalDirection, dim: RefusalDirection,
            prompts: list[str], out: str | Path, progress: bool = True) -> list[dict]:
    """Attack every prompt (first ``cfg.n_prompts``) and write one results row per prompt."""
    direction.check_width(model.d_model)
    layer = model.check_layer(cfg.layer(model.n_layers))
    out = ensure_dir(Path(out))
    check_checkpoints((out / "checkpoints").glob("*.json"))  # a corrupt one fails now, not after the targets
    prompts = prompts[:cfg.n_prompts]
    targets = dim_targets(model, dim, prompts, cfg, out)
    allowed = allowed_tokens(model.tokenizer, model.hf_model.get_input_embeddings().weight.shape[0])
    vec = direction.vector.float().to(model.device)
    rows = {r["prompt"]: r for r in read_rows(out / "results.jsonl")}
    for i, (prompt, target) in enumerate(zip(prompts, targets)):
        key = {"prompt": prompt, "target": target, "direction": tensor_digest(vec), "layer": layer,
               "model": model.key}
        row_key = json_digest({**key, "gcg": cfg.key(), "steps": cfg.steps, "max_new_tokens": cfg.max_new_tokens})
        if rows.get(prompt, {}).get("key") == row_key:
            continue
        loss = SuffixLoss(model, make_problem(model, prompt, target), vec if cfg.aux_weight > 0 else None, layer,
                          cfg.aux_weight)
        attack = run_attack(loss, model.tokenizer, allowed, cfg, key, out / "checkpoints" / f"{i:03d}.json", progress,
                            desc=f"GCG {i + 1}/{len(prompts)}")
        suffix = model.tokenizer.decode(attack.ids)
        adv = f"{prompt} {suffix}"
        completion = generate(model, [adv], cfg.max_new_tokens, desc=None)[0]
        plain, suffixed = (cosine_traces(model, [p], vec)[0].tolist() for p in (prompt, adv))
        rows[prompt] = {"prompt": prompt, "suffix": suffix, "target": target, "layer": layer,
                        "aux_weight": cfg.aux_weight, "losses": [h["loss"] for h in attack.history],
                        "ce": [h["ce"] for h in attack.history], "aux": [h["aux"] for h in attack.history],
                        "cos_plain": plain, "cos_suffixed": suffixed, "completion": completion,
                        "refused": is_refusal(completion), "dtype": model.dtype_name, "key": row_key}
        write_text(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows.values()))
    return [rows[p] for p in prompts]
