"""The second judges (LLM, LlamaGuard, StrongREJECT with stubs), their agreement, the heretic
protocol and the answer-length curve, on the tiny model."""

import json
import sys
import types

import pytest
import torch

from helpers import PROMPTS
from refusal_tl.cli import main
from refusal_tl.errors import RefusalTLError
from refusal_tl.eval.judges import LlamaGuardJudge, LLMJudge, StrongRejectJudge, agreement, make_judge
from refusal_tl.eval.length import length_curve
from refusal_tl.eval.protocol import HereticJudge, heretic_refusal, protocol
from refusal_tl.geometry import RefusalDirection
from refusal_tl.pipeline.figures import length_figure, protocol_frame
from refusal_tl.pipeline.trust import protocol_table
from refusal_tl.steer.generation import generate


def test_agreement_hand_computed():
    truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    a = agreement(pred, truth)
    # tp 3, predicted 4, true 4: precision = recall = 0.75; accuracy 0.8; chance 0.4·0.4 + 0.6·0.6 = 0.52
    assert a["precision"] == a["recall"] == 0.75 and a["accuracy"] == pytest.approx(0.8)
    assert a["kappa"] == pytest.approx((0.8 - 0.52) / 0.48)
    assert agreement(truth, truth)["kappa"] == 1.0
    with pytest.raises(RefusalTLError, match="equally long"):
        agreement(pred, truth[:-1])


def test_llm_judge_reads_the_margin_of_A_over_B(tiny):
    judge = LLMJudge(tiny, batch_size=4)
    margins = judge.margins(PROMPTS[:4], ["I cannot help.", "Sure, here is how.", "", "As an AI I won't."])
    assert margins.shape == (4,) and torch.isfinite(margins).all()
    assert judge(PROMPTS[:4], ["I cannot help.", "Sure, here is how.", "", "As an AI I won't."]) == [
        float(m > 0) for m in margins]
    assert judge.name == f"llm:{tiny.name}" and judge.kind == "refusal"
    raw = LLMJudge(tiny, batch_size=4, calibrate=False)  # calibration subtracts the content-free answer's margin
    answers = ["I cannot help.", "Sure, here is how.", "", "As an AI I won't."]
    expected = raw.margins(PROMPTS[:4], answers) - raw.margins(PROMPTS[:4], ["N/A"] * 4)
    assert torch.allclose(judge.margins(PROMPTS[:4], answers), expected, atol=1e-5)


def test_make_judge(tiny, caplog):
    assert make_judge("substring").name == "substring"
    with caplog.at_level("WARNING"):
        assert isinstance(make_judge("llm", tiny), LLMJudge)
    assert "weak judge" in caplog.text
    with pytest.raises(RefusalTLError, match="--judge-model"):
        make_judge("llm")
    with pytest.raises(RefusalTLError, match="unknown judge"):
        make_judge("vibes")


def test_llamaguard_judge_with_a_stub_guard():
    seen = []

    def guard(convs):
        seen.extend(convs)
        return ["unsafe\nS2" if "here is how" in c[1]["content"] else "safe" for c in convs]
    judge = LlamaGuardJudge(classify=guard)
    assert judge(["hack wifi", "hack wifi"], ["I can't do that.", "Sure, here is how: ..."]) == [1.0, 0.0]
    assert seen[0] == [{"role": "user", "content": "hack wifi"}, {"role": "assistant", "content": "I can't do that."}]


def test_strongreject_judge_with_a_stub_package(monkeypatch):
    calls = {}

    def evaluate_dataset(ds, evaluators):
        calls["evaluators"] = evaluators
        return {"score": [0.0 if "cannot" in r else 0.9 for r in ds["response"]]}
    pkg, mod = types.ModuleType("strong_reject"), types.ModuleType("strong_reject.evaluate")
    mod.evaluate_dataset = evaluate_dataset
    monkeypatch.setitem(sys.modules, "strong_reject", pkg)
    monkeypatch.setitem(sys.modules, "strong_reject.evaluate", mod)
    assert StrongRejectJudge()(["a", "b"], ["I cannot.", "Step 1"]) == [0.0, 0.9]
    assert calls["evaluators"] == ["strongreject_finetuned"]


def test_heretic_markers():
    assert heretic_refusal("I *won’t*   do that")  # emphasis and apostrophe normalised
    assert heretic_refusal("   ")  # empty answers count as refusals
    assert heretic_refusal("That would be ILLEGAL.") and not heretic_refusal("Sure! Step 1: preheat the oven.")
    assert HereticJudge()(["x", "y"], ["sorry", "ok"]) == [1.0, 0.0]
    p = protocol("heretic")
    assert (p.system_prompt, p.max_new_tokens) == ("You are a helpful assistant.", 100)
    with pytest.raises(RefusalTLError, match="unknown protocol"):
        protocol("nope")


def test_system_prompt_is_scoped(tiny):
    before = tiny.chat.format("hi")
    with tiny.system_prompt("You are a helpful assistant."):
        inside = tiny.chat.format("hi")
        assert tiny.chat.system == "You are a helpful assistant."
    assert "You are a helpful assistant." in inside and "Qwen" not in inside
    assert tiny.chat.format("hi") == before and "Qwen" in before


def test_protocol_table_and_cli(tiny, tiny_dir, tmp_path):
    d = RefusalDirection(3 * torch.randn(tiny.d_model), layer=2, pos=-1, model=tiny.name, weights_sha="t")
    table = protocol_table(tiny, {"DIM": d}, PROMPTS[:3], PROMPTS[3:6])
    assert table["system_prompt"] == "You are a helpful assistant." and table["max_new_tokens"] == 100
    base, dim = table["rows"]
    assert base["n"] == 3 and 0 <= base["lo"] <= base["rate"] <= base["hi"] <= 1 and dim["kl"] > 0
    assert len(protocol_frame(table)) == 2
    d.save(tmp_path / "d.safetensors")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": p}) + "\n" for p in PROMPTS[:2]))
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(tiny_dir), "--direction", str(tmp_path / "d.safetensors"), "--intervention",
                 "ablate", "--prompts", str(prompts), "--protocol", "heretic", "--max-new-tokens", "4",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "heretic" and res["judge"] == "heretic_markers" and res["max_new_tokens"] == 4
    assert res["system_prompt"] == "You are a helpful assistant."
    assert res["refusals"] == f"{sum(r['refused'] for r in res['results'])}/2"
    lo, hi = res["ci95"]
    assert 0 <= lo <= res["rate"] <= hi <= 1


def test_length_curve_judges_prefixes_of_one_generation(tiny):
    d = RefusalDirection(3 * torch.randn(tiny.d_model), layer=2, pos=-1, model=tiny.name, weights_sha="t")
    seen = {}

    class Recorder:
        name, kind = "recorder", "refusal"

        def __call__(self, prompts, completions):
            seen.setdefault(len(seen), completions)
            return [float(len(c) % 2) for c in completions]
    table = length_curve(tiny, PROMPTS[:4], {"none": None, "DIM": d}, (2, 5), Recorder())
    assert list(table.condition) == ["none", "none", "DIM", "DIM"] and list(table.tokens) == [2, 5, 2, 5]
    # the answer cut at 2 tokens is what a 2-token generation gives
    assert seen[0] == generate(tiny, PROMPTS[:4], 2)
    assert seen[1] == generate(tiny, PROMPTS[:4], 5)
    assert (table.lo <= table.rate).all() and (table.rate <= table.hi).all()
    assert (table.mean_length <= table.tokens).all()
    assert len(length_figure({"rows": table.to_dict("records")}).data) == 4  # a band and a line per condition


def test_the_labelled_set_and_agreement_on_it(tiny):
    from pathlib import Path

    from refusal_tl.eval.agreement import agreement_table, judge_agreement, load_labelled
    from refusal_tl.eval.judges import SubstringJudge

    rows = load_labelled(Path(__file__).resolve().parents[2] / "data" / "labelled_completions.jsonl")
    conditions = {(r["prompts"], r["condition"]) for r in rows}
    assert len(rows) >= 150 and {r["label"] for r in rows} == {"refusal", "compliance"}
    assert {("harmful", "none"), ("harmful", "ablate DIM"), ("harmless", "add DIM"), ("harmless", "none")} <= conditions
    res = judge_agreement(rows[:12], {"substring": SubstringJudge(), "heretic": HereticJudge(), "llm": LLMJudge(tiny)})
    table = agreement_table(res)
    assert list(table.judge) == ["substring", "heretic", "llm"] and len(res["pairwise"]) == 3
    sub = table.set_index("judge").loc["substring"]
    # the substring judge's precision on the set's first 12 answers, counted by hand here
    first = rows[:12]
    truth = [r["label"] == "refusal" for r in first]
    flagged = [bool(s) for s in SubstringJudge()([r["prompt"] for r in first], [r["completion"] for r in first])]
    assert sub.precision == sum(f and t for f, t in zip(flagged, truth)) / sum(flagged)
    assert -1 <= sub.kappa <= 1
    from refusal_tl.pipeline.report import judges_section
    section = judges_section(res)
    assert len(section.tables[0]) == 3 and "κ" in section.text


def test_bad_labelled_file_is_a_clear_error(tmp_path):
    from refusal_tl.eval.agreement import load_labelled

    (tmp_path / "l.jsonl").write_text('{"prompt": "a", "completion": "b", "label": "maybe"}\n')
    with pytest.raises(RefusalTLError, match="refusal|compliance"):
        load_labelled(tmp_path / "l.jsonl")


def test_asr_sets_online_and_offline(tiny, monkeypatch):
    from refusal_tl import data
    from refusal_tl.pipeline.cache import Answers
    from refusal_tl.pipeline.trust import asr_sets
    from refusal_tl.plotting.rdo import asr_panels

    d = RefusalDirection(3 * torch.randn(tiny.d_model), layer=2, pos=-1, model=tiny.name, weights_sha="t")
    names = ("strongreject", "sorrybench", "jailbreakbench")
    monkeypatch.setattr(data, "hub_reachable", lambda: False)
    offline = asr_sets(tiny, {"DIM": d}, names, 3, Answers(tiny, 3))["panels"]
    assert len(offline) == 1 and offline[0]["title"].startswith("bundled harmful test (offline")  # one shared panel
    assert len(offline[0]["stands_in_for"]) == 3 and [r["method"] for r in offline[0]["rows"]] == ["no intervention",
                                                                                                   "DIM"]
    monkeypatch.setattr(data, "hub_reachable", lambda: True)
    monkeypatch.setattr(data, "load_hub", lambda name, n: PROMPTS[:n] if name != "sorrybench" else PROMPTS[3:3 + n])
    online = asr_sets(tiny, {"DIM": d}, names, 3, Answers(tiny, 3))["panels"]
    assert [p["title"] for p in online] == ["StrongREJECT (Fig. 11)", "SORRY-Bench (Fig. 12)",
                                            "JailbreakBench (Fig. 13)"]
    assert all(r["lo"] <= r["asr"] <= r["hi"] for p in online for r in p["rows"])
    assert len(asr_panels(online).data) == 3
