"""``refusal-tl eval``: generate under an intervention (one direction, several, or cone samples) and judge."""

from __future__ import annotations

from pathlib import Path

from refusal_tl import data
from refusal_tl.commands.common import load_direction, model_args, model_of, profile_arg
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.capability import capability_proxy
from refusal_tl.eval.evaluate import check_several, evaluate_intervention, first_token_kl
from refusal_tl.eval.judges import JUDGES, make_judge
from refusal_tl.eval.protocol import PROTOCOLS, protocol
from refusal_tl.eval.samples import evaluate_cone
from refusal_tl.geometry import RefusalCone
from refusal_tl.io import ensure_dir, write_json
from refusal_tl.profiles import EvalSizes
from refusal_tl.steer.hooks import AT_LAYER, INTERVENTIONS

NAME = "eval"
HELP = "generate under an intervention and judge refusals"
DESCRIPTION = """\
Greedy generation on --prompts under one intervention, judged by the substring judge
(or StrongREJECT, whose scores are ASR). Writes per-prompt completions with their judgement
and the summary rate.
  none      no intervention (baseline)
  ablate    project the direction out at every layer (resid_pre, attn_out, mlp_out)
  subtract  resid_pre[L] -= alpha * unit(direction)   (jailbreak)
  add       resid_pre[L] += alpha * unit(direction)   (induce refusal)
L and alpha default to the direction's layer and norm from its metadata."""


def add_arguments(p) -> None:
    model_args(p)
    p.add_argument("--direction", type=Path, action="append", default=None,
                   help="direction.safetensors from `refusal-tl dim`; repeat to ablate several together")
    p.add_argument("--sequential", action="store_true",
                   help="several directions: project them out one after another (the authors' way) instead of "
                        "projecting out their span")
    p.add_argument("--cone", type=Path, default=None,
                   help="basis.safetensors from `refusal-tl cone`: evaluate --samples directions of the cone")
    p.add_argument("--samples", type=int, default=None, help="cone samples to evaluate (default from --profile)")
    p.add_argument("--seed", type=int, default=42, help="seed of the cone samples (the paper: 42)")
    profile_arg(p, "default sizes (cone samples)")
    p.add_argument("--intervention", default="ablate", choices=list(INTERVENTIONS))
    p.add_argument("--layer", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--prompts", required=True,
                   help="prompt file, bundled:harmful:test / bundled:harmless:test, or hub:NAME[:SPLIT]")
    p.add_argument("--n", type=int, default=None, help="use only the first N prompts")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: 32, or the protocol's")
    p.add_argument("--protocol", default="default", choices=list(PROTOCOLS),
                   help="heretic: heretic 1.4's units (system prompt 'You are a helpful assistant.', 100 new "
                        "tokens, its refusal markers, refusals out of N)")
    p.add_argument("--judge", default=None, choices=list(JUDGES),
                   help="default: the protocol's (substring, or heretic's markers); llm (a rubric read by "
                        "--judge-model, default the model itself), "
                        "strongreject or llamaguard (both need the Hub)")
    p.add_argument("--judge-model", default=None, help="the LLM judge's model (a spec as for --model)")
    p.add_argument("--kl", action="store_true", help="also report first-token KL vs. no intervention")
    p.add_argument("--capability", action="store_true",
                   help="also the offline capability proxy on these (harmless) prompts: CE of the model's own "
                        "completions with and without the intervention (Arditi et al.)")
    p.add_argument("--out", required=True, type=Path, help="output JSON file")


def run(args) -> None:
    ensure_dir(args.out.parent)
    prompts = data.load_source(args.prompts, args.n)
    proto = protocol(args.protocol)
    args.max_new_tokens = args.max_new_tokens or proto.max_new_tokens or 32
    if args.cone is not None:
        return run_cone(args, prompts, proto)
    check_several(len(args.direction or []), args.intervention)  # before the model loads
    direction = [load_direction(p) for p in args.direction or []] or None
    model = model_of(args)
    judge = make_judge(args.judge, model, args.judge_model) if args.judge else proto.make_judge()
    with model.system_prompt(proto.system_prompt):
        res = evaluate_intervention(model, prompts, direction, args.intervention, args.layer, args.alpha,
                                    args.max_new_tokens, judge, args.batch_size or 16, args.sequential)
        out = {**res.to_dict(), "measure": "refusal_rate" if judge.kind == "refusal" else "asr",
               "dtype": model.dtype_name, "protocol": proto.name, "system_prompt": model.chat.system}
        if judge.kind == "refusal":
            out["refusals"] = f"{round(sum(res.scores))}/{len(prompts)}"
        if args.kl and direction is not None and args.intervention != "none":
            out["first_token_kl"] = first_token_kl(model, prompts, direction, args.intervention, args.layer,
                                                   args.alpha)
        if args.capability and direction is not None:
            proxy = capability_proxy(model, prompts, direction, args.intervention, args.max_new_tokens, args.layer,
                                     args.alpha, args.batch_size or 16)
            out["capability_proxy"] = proxy.to_dict()
    write_json(args.out, out)
    kl = f", first-token KL {out['first_token_kl']:.4f}" if "first_token_kl" in out else ""
    lo, hi = res.ci95
    count = f" ({out['refusals']} refusals)" if "refusals" in out else ""
    print(f"{args.intervention}: {'refusal rate' if judge.kind == 'refusal' else 'ASR'} {res.rate:.1%} "
          f"[95 % CI {lo:.1%}, {hi:.1%}]{count} on {len(prompts)} prompts{kl} ({proto.name} protocol) "
          f"-> {args.out}")
    if "capability_proxy" in out:
        c = out["capability_proxy"]
        print(f"capability proxy: CE of own completions {c['ce_clean']:.3f} -> {c['ce_intervened']:.3f} "
              f"(Δ {c['delta_ce']:+.3f}) on {c['n_prompts']} prompts")


def run_cone(args, prompts: list[str], proto) -> None:
    if args.direction is not None:
        raise RefusalTLError("pass either --direction or --cone, not both.")
    if args.intervention not in ("ablate", *AT_LAYER):
        raise RefusalTLError("--cone evaluates sampled directions: choose --intervention ablate, add or subtract.")
    cone = RefusalCone.load(args.cone)
    n = args.samples or EvalSizes.of(args.profile).n_cone_samples
    model = model_of(args)
    judge = make_judge(args.judge, model, args.judge_model) if args.judge else proto.make_judge()
    with model.system_prompt(proto.system_prompt):
        res = evaluate_cone(model, prompts, cone, n, args.seed, args.intervention, args.layer, args.alpha,
                            args.max_new_tokens, judge, args.batch_size or 64)
    write_json(args.out, {**res.to_dict(), "dtype": model.dtype_name, "protocol": proto.name})
    rates, what = res.rates, res.measure.replace("_", " ")
    print(f"{args.intervention}, {n} samples of the {cone.dims}-dimensional cone on {len(prompts)} prompts: "
          f"{what} {res.rate:.1%} (samples: median {rates.median():.1%}, "
          f"min {rates.min():.1%}, max {rates.max():.1%}) -> {args.out}")
