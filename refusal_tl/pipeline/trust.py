"""What makes the held-out numbers trustworthy (docs/algorithms.md §7), beside the results table of
:mod:`refusal_tl.pipeline.suite`: Table 5 in another protocol's units (:func:`protocol_table`), attack
success on the paper's public evaluation sets (:func:`asr_sets`, Figs. 11–13), the judges against hand
labels (:func:`judges_on_labels`) and the paired DIM-vs-RDO statements of the report
(:func:`method_comparisons`).
"""

from __future__ import annotations

from pathlib import Path

from refusal_tl import data
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.agreement import judge_agreement, load_labelled
from refusal_tl.eval.evaluate import first_token_kl
from refusal_tl.eval.judges import LLMJudge, SubstringJudge
from refusal_tl.eval.protocol import HereticJudge, protocol
from refusal_tl.geometry import RefusalDirection
from refusal_tl.model import RefusalModel
from refusal_tl.pipeline.cache import Answers
from refusal_tl.stats import compare, count_ci

# the hand-labelled completions (a repository checkout has them; an installed package does not)
LABELLED = Path(__file__).resolve().parents[2] / "tests" / "data" / "labelled_completions.jsonl"


def protocol_table(model: RefusalModel, directions: dict[str, RefusalDirection], harmful: list[str],
                   harmless: list[str], name: str = "heretic") -> dict:
    """Table 5's headline numbers in another protocol's units (:mod:`refusal_tl.eval.protocol`): per
    method, refusals out of N on ``harmful`` under ablation with their Wilson interval, and first-token
    KL on ``harmless``, all with the protocol's system prompt, answer length and judge."""
    proto = protocol(name)
    rows = []
    with model.system_prompt(proto.system_prompt):
        book = Answers(model, proto.max_new_tokens, proto.make_judge())
        for method, d in [("no intervention", None), *directions.items()]:
            _, scores = book.answers(harmful, d, "ablate" if d is not None else "none")
            k, n, lo, hi = count_ci(scores)
            kl = first_token_kl(model, harmless, d, "ablate") if d is not None else 0.0
            rows.append(dict(method=method, refusals=k, n=n, rate=k / n, lo=lo, hi=hi, kl=kl))
        system = model.chat.system
    return {"protocol": name, "system_prompt": system, "max_new_tokens": proto.max_new_tokens,
            "judge": proto.judge.name, "rows": rows}


# Figs. 11–13: attack success under ablation on the paper's three evaluation sets
ASR_SETS = {"strongreject": "StrongREJECT (Fig. 11)", "sorrybench": "SORRY-Bench (Fig. 12)",
            "jailbreakbench": "JailbreakBench (Fig. 13)"}


def asr_sets(model: RefusalModel, directions: dict[str, RefusalDirection], names: tuple[str, ...], n: int,
             answers: Answers) -> dict:
    """Figs. 11–13: attack success rate (1 − refusal rate) with no intervention and under ablation of each
    direction, with Wilson intervals, on StrongREJECT, SORRY-Bench and JailbreakBench where the Hub is
    reachable. Offline each falls back to the bundled harmful test prompts, labelled as such (sets that
    fell back share one panel: the same prompts)."""
    panels: dict[str, dict] = {}
    for name in names:
        prompts = None
        if data.hub_reachable():
            try:
                prompts, title = data.load_hub(name, n), ASR_SETS[name]
            except RefusalTLError:
                prompts = None
        if prompts is None:
            prompts, title = data.bundled("harmful", "test", n), "bundled harmful test (offline stand-in)"
        panel = panels.setdefault(title, {"title": title, "stands_in_for": [], "n": len(prompts), "rows": []})
        panel["stands_in_for"].append(ASR_SETS[name])
        if panel["rows"]:
            continue
        for method, d in [("no intervention", None), *directions.items()]:
            _, scores = answers.answers(prompts, d, "ablate" if d is not None else "none")
            k, size, lo, hi = count_ci(scores)
            panel["rows"].append(dict(method=method, asr=1 - k / size, lo=1 - hi, hi=1 - lo, n=size))
    return {"panels": list(panels.values())}


def judges_on_labels(model: RefusalModel, path: Path = LABELLED) -> dict:
    """The substring judge, heretic's markers and the LLM judge (``model`` itself) against the hand labels."""
    judges = {"substring": SubstringJudge(), "heretic markers": HereticJudge(), f"LLM ({model.name})": LLMJudge(model)}
    return judge_agreement(load_labelled(path), judges)


def method_scores(table: dict, judge=None) -> dict[str, dict[str, list[float]]]:
    """Per-prompt judgements ``scores[method][condition]`` of :func:`method_table`'s completions
    (re-judged, so a cached table gives them too): the paired comparisons need them."""
    judge = judge or SubstringJudge()
    return {m: {c: judge(table["prompts"][c.split("/")[0]], texts) for c, texts in conds.items()}
            for m, conds in table["completions"].items()}


def method_comparisons(table: dict) -> list[str]:
    """The report's statements on DIM against RDO (and any later method against the first), each
    only where the bootstrap interval of the paired difference excludes 0 ("within noise" otherwise)."""
    scores = method_scores(table)
    first, *others = [m for m in scores if m != "no intervention"]
    out = []
    for m in others:
        for cond, what in (("harmful/ablate", "refusal rate under ablation"),
                           ("harmful/subtract", "refusal rate under subtraction"),
                           ("harmless/add", "induced refusal under addition")):
            if cond in scores[m] and cond in scores[first]:
                out.append(compare(m, scores[m][cond], first, scores[first][cond], what))
    return out
