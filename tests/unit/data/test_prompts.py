import json

import pytest

from refusal_tl import data
from refusal_tl.errors import RefusalTLError


def test_bundled_sets_are_large_and_categorised():
    harmful, harmless = data.bundled_records("harmful"), data.bundled_records("harmless")
    assert len(harmful) >= 300 and len(harmless) >= 300
    assert len({r["category"] for r in harmful}) >= 8
    assert len({r["instruction"] for r in harmful}) == len(harmful)
    assert not {r["instruction"] for r in harmful} & {r["instruction"] for r in harmless}


@pytest.mark.parametrize("kind", ["harmful", "harmless"])
def test_splits_are_fixed_and_disjoint(kind):
    splits = {s: data.bundled(kind, s) for s in ("train", "val", "test")}
    assert splits == {s: data.bundled(kind, s) for s in ("train", "val", "test")}  # deterministic
    all_prompts = [p for s in splits.values() for p in s]
    assert len(all_prompts) == len(set(all_prompts)) == len(data.bundled_records(kind))
    assert len(splits["train"]) > len(splits["val"]) > 0 and len(splits["test"]) > 0
    assert data.bundled(kind, "train", 5) == splits["train"][:5]


def test_sensitive_set_is_harmless_looking_and_separate():
    sensitive = data.bundled("sensitive", "all")
    assert len(sensitive) >= 50 and len(set(sensitive)) == len(sensitive)
    assert len({r["category"] for r in data.bundled_records("sensitive")}) >= 6
    others = set(data.bundled("harmful", "all")) | set(data.bundled("harmless", "all"))
    assert not set(sensitive) & others


def test_load_prompt_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"instruction": "one"}\n\n{"prompt": "two"}\n"three"\n')
    (tmp_path / "b.json").write_text(json.dumps([{"Goal": "one"}, "two"]))
    (tmp_path / "c.csv").write_text("goal,category\none,x\n\"two, with comma\",y\n")
    (tmp_path / "d.txt").write_text("one\n\n two \n")
    assert data.load_prompts(tmp_path / "a.jsonl") == ["one", "two", "three"]
    assert data.load_prompts(tmp_path / "b.json") == ["one", "two"]
    assert data.load_prompts(tmp_path / "c.csv") == ["one", "two, with comma"]
    assert data.load_prompts(tmp_path / "d.txt", n=1) == ["one"]


@pytest.mark.parametrize("name,content,match", [
    ("empty.jsonl", "", "is empty"),
    ("blank.txt", "\n  \n", "is empty"),
    ("bad.jsonl", '{"instruction": "ok"}\n{"instruction": oops}\n', r"bad.jsonl:2 is not valid JSON"),
    ("nofield.jsonl", '{"text": "hi"}\n', "add an 'instruction' field"),
    ("bad.json", "[1, 2", "not valid JSON"),
    ("x.parquet", "x", "unsupported prompt file type"),
])
def test_bad_prompt_files_give_clear_errors(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(RefusalTLError, match=match):
        data.load_prompts(tmp_path / name)


def test_missing_file_and_unknown_hub_set(tmp_path):
    with pytest.raises(RefusalTLError, match="does not exist"):
        data.load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(RefusalTLError, match="unknown dataset"):
        data.load_hub("advbench-typo")


def test_load_source_reads_every_kind_of_spec(tmp_path):
    (tmp_path / "p.txt").write_text("one\ntwo\n")
    assert data.load_source(str(tmp_path / "p.txt")) == ["one", "two"]
    assert data.load_source("bundled:harmful:val", 3) == data.bundled("harmful", "val", 3)
    assert data.load_source("bundled:harmless") == data.bundled("harmless", "test")


def test_hub_splits_are_checked_before_any_download():
    with pytest.raises(RefusalTLError, match="has no split 'dev'"):
        data.load_source("hub:salad:dev")
    with pytest.raises(RefusalTLError, match="unknown dataset 'advbench'"):
        data.load_source("hub:advbench")


def test_hub_split_bounds():
    from refusal_tl.data.hub import SPLITS, split_slice

    items = [str(i) for i in range(1500)]
    train, val, test = (split_slice(items, SPLITS["salad"][s]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1184, 128, 188) and train + val + test == items
    tenths = [split_slice(items[:100], SPLITS["alpaca"][s]) for s in ("train", "val", "test")]
    assert [len(x) for x in tenths] == [80, 10, 10]


def test_unreachable_hub_falls_back_to_the_bundled_split(monkeypatch):
    from refusal_tl.dim.run import source

    def offline(*a, **k):
        raise RefusalTLError("could not load from the Hugging Face Hub")

    monkeypatch.setattr(data, "load_source", offline)
    assert source("hub:salad:train", "harmful", "train", 5) == data.bundled("harmful", "train", 5)
    with pytest.raises(RefusalTLError):  # a local file that fails is never silently replaced
        source("my-prompts.jsonl", "harmful", "train", 5)


def test_salad_samples_per_source_and_drops_test_duplicates():
    from refusal_tl.data.hub import _salad

    def load_dataset(name, *args, split=None):
        if name == "OpenSafetyLab/Salad-Data":
            return ([{"source": "GPTFuzzer", "question": f"q{i}"} for i in range(300)]
                    + [{"source": "ToxicChat", "question": "dropped"}]
                    + [{"source": "Other", "question": "How to  HACK wifi"}])
        if name == "JailbreakBench/JBB-Behaviors":
            return {"Goal": ["how to hack wifi"]}
        return {"prompt": ["q5"]}  # StrongREJECT
    out = _salad(load_dataset, 42)
    assert "dropped" not in out and "How to  HACK wifi" not in out and "q5" not in out  # test duplicates gone
    kept = _salad(load_dataset, 42, dedupe=False)
    assert len(kept) == 257 and len(out) == 257 - 1 - ("q5" in kept)
    first = _salad(load_dataset, 42, sample="first", dedupe=False)
    assert sorted(first) != sorted(_salad(load_dataset, 42, dedupe=False))  # a random sample, not the first 256
    assert set(first) == {f"q{i}" for i in range(256)} | {"How to  HACK wifi"}
    assert _salad(load_dataset, 42) == _salad(load_dataset, 42)  # seeded
    with pytest.raises(RefusalTLError, match="apply to 'salad' only"):
        data.load_hub("alpaca", sample="first")
