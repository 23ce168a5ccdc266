"""What each ``refusal-tl`` subcommand does: build the config (validated before any model
loads), call the library, print a short summary. The parser lives in :mod:`refusal_tl.cli`."""

from __future__ import annotations

import time
from pathlib import Path

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError


def cmd_reproduce(args) -> None:
    from refusal_tl.model import load_model
    from refusal_tl.reproduce import ReproduceConfig, reproduce

    cfg = ReproduceConfig(model=args.model, profile=args.profile,
                          stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
                          evaluate=not args.no_eval, dtype=args.dtype)
    t0 = time.perf_counter()
    model = load_model(cfg.model, args.device, args.dtype, args.device_map)
    res = reproduce(cfg, args.out, model, load_seconds=time.perf_counter() - t0)
    for stage, t in res.timings.items():
        peak = f", peak {t['peak_rss_gb']:.1f} GB" if "peak_rss_gb" in t else ""
        print(f"{stage:>8}: {t['seconds']:8.1f} s{peak}")
    print(f"wrote {args.out / 'report.html'} (timings in {args.out / 'timings.json'})")


def cmd_dim(args) -> None:
    from refusal_tl.dim import DimConfig, run_dim
    from refusal_tl.io import ensure_dir
    from refusal_tl.model import load_model

    cfg = DimConfig.from_profile(
        args.profile, model=args.model, n_train=args.n_train, n_val=args.n_val,
        n_val_harmless=args.n_val_harmless, batch_size=args.batch_size, positions=args.positions,
        filter_prompts=False if args.no_filter else None, harmful_train=args.harmful_train,
        harmless_train=args.harmless_train, harmful_val=args.harmful_val, harmless_val=args.harmless_val,
        device=args.device, dtype=args.dtype,
    )
    ensure_dir(args.out / "dim")
    model = load_model(cfg.model, cfg.device, cfg.dtype, args.device_map)
    res = run_dim(cfg, args.out, model)
    s = res.selection.best
    print(f"selected layer {res.direction.layer}, position {res.direction.pos}, norm {res.direction.norm:.2f}: "
          f"bypass {s.bypass:.2f} (baseline {res.selection.baseline_bypass:.2f}), induce {s.induce:.2f}, KL {s.kl:.3f}")
    print(f"wrote {args.out / 'dim'}  ({sum(res.seconds.values()):.0f} s)")


def cmd_rdo(args) -> None:
    from refusal_tl.model import load_model
    from refusal_tl.rdo import RdoRunConfig, run_rdo
    from refusal_tl.rdo.run import dim_path

    weights = {k: v for k, v in (("abl", args.lambda_abl), ("add", args.lambda_add), ("ret", args.lambda_ret))
               if v is not None}
    rdo = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
               plateau_window=args.plateau_window, retain_kl=args.retain_kl, weights=weights)
    cfg = RdoRunConfig.from_profile(
        args.profile, rdo=rdo, model=args.model, n_train=args.n_train, layer=args.layer,
        selection=args.selection, refusal_targets=args.refusal_targets, restarts=args.restarts,
        batch_size=args.batch_size, max_steps=args.max_steps,
        filter_prompts=False if args.no_filter else None, harmful_train=args.harmful_train,
        harmless_train=args.harmless_train,
    )  # validates every option before the model loads
    dim_path(args.run)
    orthogonal = [load_direction(p) for p in args.orthogonal_to or []]
    name = args.name or ("rdo-perp" if orthogonal else "rdo")
    model = load_model(cfg.model, args.device, args.dtype, args.device_map)
    res = run_rdo(cfg, args.run, model, name=name, orthogonal_to=orthogonal)
    h = res.run.history[res.selection.step]
    print(f"RDO{'⊥' if orthogonal else ''}: {res.run.step} steps, selected step {h['step']} ({res.selection.how}): "
          f"L_abl {h['abl']:.3f}, L_add {h['add']:.3f}, L_ret {h['ret']:.4f}; cosine to DIM {res.cosine_to_dim:.3g}")
    print(f"wrote {res.run_dir}  ({sum(res.seconds.values()):.0f} s)")


def load_direction(path: Path):
    from refusal_tl.geometry import RefusalDirection

    return RefusalDirection.load(path)


def cmd_repind(args) -> None:
    from refusal_tl.model import load_model
    from refusal_tl.rdo.run import dim_path
    from refusal_tl.repind import RepIndRunConfig, run_repind

    repind = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
                  ind_weight=args.lambda_ind, layer_fraction=args.layer_fraction)
    cfg = RepIndRunConfig.from_profile(
        args.profile, repind=repind, model=args.model, k=args.k, candidates=args.candidates, n_train=args.n_train,
        batch_size=args.batch_size, max_steps=args.max_steps, filter_prompts=False if args.no_filter else None,
    )  # validates every option before the model loads
    dim_path(args.run)
    model = load_model(cfg.model, args.device, args.dtype, args.device_map)
    res = run_repind(cfg, args.run, model)
    for d, cands in zip(res.directions, res.candidates):
        e = d.extra
        print(f"RepInd-{e['k']}: candidate {e['candidate'] + 1}/{len(cands)}, step {e['step']}, "
              f"val refusal score {e['val_refusal_score']:.2f}; cosine to V "
              f"{', '.join(f'{c:.2f}' for c in e['cosines_to_V'])} -> {args.run / ('repind-' + str(e['k']))}")
    print(f"({sum(res.seconds.values()):.0f} s)")


def cmd_export(args) -> None:
    from refusal_tl.export import export_model
    from refusal_tl.model import load_model

    directions = [load_direction(p) for p in args.direction]
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    out = export_model(model, directions, args.out, args.format, args.gguf_dtype)
    how = f"'{out}', gguf_file='model.gguf'" if args.format == "gguf" else f"'{out}'"
    print(f"wrote {out}: {model.name} with {', '.join(d.method for d in directions)} ablated in the weights "
          f"(load it with AutoModelForCausalLM.from_pretrained({how}))")


def cmd_bench(args) -> None:
    from refusal_tl.eval.benchmarks import lm_eval_scores
    from refusal_tl.io import ensure_dir, write_json
    from refusal_tl.model import load_model

    tasks = list(profiles.BENCH_TASKS) if args.tasks == "paper" else [t for t in args.tasks.split(",") if t]
    directions = [load_direction(p) for p in args.direction]
    ensure_dir(args.out.parent)
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    name = "ablated: " + " + ".join(d.method for d in directions)
    res = lm_eval_scores(model, {name: directions}, tasks, args.limit, args.batch_size or 8, args.tasks_dir)
    write_json(args.out, res.to_dict())
    print(res.table().to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"({res.seconds:.0f} s) -> {args.out}")


def cmd_chat(args) -> None:
    from refusal_tl.chat import Side, run_chat
    from refusal_tl.eval.evaluate import check_several, direction_hooks
    from refusal_tl.model import load_model

    check_several(len(args.direction), args.intervention)  # before the model loads
    directions = [load_direction(p) for p in args.direction]
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    hooks = direction_hooks(model, directions, args.intervention, args.layer, args.alpha)
    what = f"{args.intervention} {'+'.join(d.method for d in directions)}"
    run_chat(model, [Side("original"), Side(what, hooks)], args.max_new_tokens)


def cmd_traces(args) -> None:
    from refusal_tl import data
    from refusal_tl.io import ensure_dir, write_json
    from refusal_tl.model import load_model
    from refusal_tl.repind import trace_pair

    ensure_dir(args.out.parent)
    prompts = data.load_source(args.prompts, args.n)
    a, b = load_direction(args.direction), load_direction(args.ablate)
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    trace = trace_pair(model, prompts, a.vector.to(model.device), b.vector.to(model.device),
                       (a.method, b.method), args.batch_size or 16)
    write_json(args.out, trace.to_dict())
    print(f"cos({a.method}, x) with {b.method} ablated: peak |Δcos| {trace.peak_delta:.3f} over "
          f"{len(prompts)} prompts -> {args.out}")


def cmd_gcg(args) -> None:
    from refusal_tl import data
    from refusal_tl.gcg import GcgConfig, run_gcg
    from refusal_tl.model import load_model
    from refusal_tl.rdo.run import dim_path, load_dim

    cfg = GcgConfig.from_profile(args.profile, model=args.model, steps=args.steps, aux_weight=args.aux_weight,
                                 aux_layer=args.aux_layer, search_width=args.search_width, topk=args.topk,
                                 n_prompts=args.n, seed=args.seed)  # validates every option before the model loads
    dim_path(args.run)
    prompts = data.load_source(args.prompts)
    direction = load_direction(args.direction)
    model = load_model(cfg.model, args.device, args.dtype, args.device_map)
    rows = run_gcg(cfg, model, direction, load_dim(args.run, model), prompts, args.out)
    for r in rows:
        layer = r["layer"]
        print(f"{'refused ' if r['refused'] else 'answered'} | cos at layer {layer}: {r['cos_plain'][layer]:+.3f} -> "
              f"{r['cos_suffixed'][layer]:+.3f} | {r['prompt'][:50]!r} + {r['suffix']!r}")
    answered = sum(not r["refused"] for r in rows)
    print(f"{answered}/{len(rows)} suffixed prompts answered -> {args.out / 'results.jsonl'}")


def parse_dims(text: str | None) -> tuple[int, ...] | None:
    """``"2,3"`` or ``"2-5"`` -> the dimensions; a clear error otherwise."""
    if text is None:
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            return tuple(range(lo, hi + 1))
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise RefusalTLError(f"--dims takes integers like 2,3 or 2-5, got {text!r}.") from None


def cmd_cone(args) -> None:
    from refusal_tl.cone import ConeRunConfig, run_cone
    from refusal_tl.model import load_model
    from refusal_tl.rdo.run import dim_path

    cone = dict(epochs=args.epochs, accumulation=args.accumulation, micro_batch=args.micro_batch, seed=args.seed,
                n_samples=args.samples, sampling=args.sampling)
    cfg = ConeRunConfig.from_profile(
        args.profile, cone=cone, model=args.model, dims=parse_dims(args.dims), init=args.init,
        selection=args.selection, filter_samples=args.filter_samples, kl_threshold=args.kl_threshold,
        early_stop=args.early_stop or None, batch_size=args.batch_size, max_steps=args.max_steps,
        n_train=args.n_train, filter_prompts=False if args.no_filter else None,
    )  # validates every option before the model loads
    dim_path(args.run)
    model = load_model(cfg.model, args.device, args.dtype, args.device_map)
    res = run_cone(cfg, args.run, model)
    for n, sel in res.selections.items():
        row = sel.chosen
        print(f"cone dim {n}: step {row['step'] + 1} ({sel.how}), train loss {row['train_loss']:.3f}; "
              f"fixed samples: bypass {row['sample_bypass']:.2f}, induce {row['sample_induce']:.2f}, "
              f"max KL {row['sample_kl_max']:.3f}; basis bypass {', '.join(f'{b:.2f}' for b in row['basis_bypass'])}")
    print(f"wrote {res.run_dir}  ({sum(res.seconds.values()):.0f} s)")


def cmd_eval(args) -> None:
    from refusal_tl import data
    from refusal_tl.eval.evaluate import check_several, evaluate_intervention, first_token_kl
    from refusal_tl.eval.judges import JUDGES
    from refusal_tl.geometry import RefusalDirection
    from refusal_tl.io import ensure_dir, write_json
    from refusal_tl.model import load_model

    ensure_dir(args.out.parent)
    prompts = data.load_source(args.prompts, args.n)
    if args.cone is not None:
        return eval_cone(args, prompts)
    check_several(len(args.direction or []), args.intervention)  # before the model loads
    direction = [RefusalDirection.load(p) for p in args.direction or []] or None
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    res = evaluate_intervention(model, prompts, direction, args.intervention, args.layer, args.alpha,
                                args.max_new_tokens, JUDGES[args.judge](), args.batch_size or 16, args.sequential)
    out = {**res.to_dict(), "dtype": model.dtype_name}
    if args.kl and direction is not None and args.intervention != "none":
        out["first_token_kl"] = first_token_kl(model, prompts, direction, args.intervention, args.layer, args.alpha)
    if args.capability and direction is not None:
        from refusal_tl.eval.capability import capability_proxy

        proxy = capability_proxy(model, prompts, direction, args.intervention, args.max_new_tokens, args.layer,
                                 args.alpha, args.batch_size or 16)
        out["capability_proxy"] = proxy.to_dict()
    write_json(args.out, out)
    what = "refusal rate" if args.judge == "substring" else "ASR"
    kl = f", first-token KL {out['first_token_kl']:.4f}" if "first_token_kl" in out else ""
    print(f"{args.intervention}: {what} {res.rate:.1%} on {len(prompts)} prompts{kl} -> {args.out}")
    if "capability_proxy" in out:
        c = out["capability_proxy"]
        print(f"capability proxy: CE of own completions {c['ce_clean']:.3f} -> {c['ce_intervened']:.3f} "
              f"(Δ {c['delta_ce']:+.3f}) on {c['n_prompts']} prompts")


def eval_cone(args, prompts: list[str]) -> None:
    from refusal_tl.eval.judges import JUDGES
    from refusal_tl.eval.samples import evaluate_cone
    from refusal_tl.geometry import RefusalCone
    from refusal_tl.io import write_json
    from refusal_tl.model import load_model

    if args.direction is not None:
        raise RefusalTLError("pass either --direction or --cone, not both.")
    if args.intervention not in ("ablate", "add", "subtract"):
        raise RefusalTLError("--cone evaluates sampled directions: choose --intervention ablate, add or subtract.")
    cone = RefusalCone.load(args.cone)
    n = args.samples or profiles.profile(args.profile, "eval")["n_cone_samples"]
    model = load_model(args.model, args.device, args.dtype, args.device_map)
    res = evaluate_cone(model, prompts, cone, n, args.seed, args.intervention, args.layer, args.alpha,
                        args.max_new_tokens, JUDGES[args.judge](), args.batch_size or 64)
    write_json(args.out, {**res.to_dict(), "dtype": model.dtype_name})
    rates = res.rates
    print(f"{args.intervention}, {n} samples of the {cone.dims}-dimensional cone on {len(prompts)} prompts: "
          f"refusal rate {res.rate:.1%} (samples: median {rates.median():.1%}, "
          f"min {rates.min():.1%}, max {rates.max():.1%}) -> {args.out}")
