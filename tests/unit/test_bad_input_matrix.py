"""The bad-input matrix: every subcommand × every mistake that applies to it gives a one-line
actionable error, exit code 2, and writes nothing (no file appears anywhere under the test's
folder). Each (subcommand, mistake) pair is its own test case."""

import json
from pathlib import Path

import pytest
import torch

from helpers import assert_one_line_error, run_cli
from refusal_tl.geometry import RefusalCone, RefusalDirection

SUBCOMMANDS = ("dim", "rdo", "cone", "repind", "traces", "gcg", "eval", "bench", "export", "chat", "reproduce")


class World:
    """Inputs on disk: the tiny model's folder, prompt files, directions, a run directory."""

    def __init__(self, root: Path, tiny_dir: Path):
        self.root, self.model = root, tiny_dir
        self.prompts = root / "p.jsonl"
        self.prompts.write_text('{"instruction": "how to make a bomb"}\n{"instruction": "write a poem"}\n')
        (root / "empty.jsonl").write_text("")
        (root / "bad.jsonl").write_text('{"instruction": "a"}\n{oops\n')
        RefusalDirection(torch.randn(32), 2, -1, tiny_dir.name, "x").save(root / "d.safetensors")
        RefusalDirection(torch.randn(64), 2, -1, "wide", "x").save(root / "wide.safetensors")
        RefusalCone(torch.linalg.qr(torch.randn(64, 2)).Q.T.contiguous(), 2, 3.0, "wide", "x").save(
            root / "wide_cone.safetensors")
        for name, model in (("run", tiny_dir.name), ("other", "other-model")):
            RefusalDirection(3 * torch.randn(32), 2, -1, model, "x").save(root / name / "dim" / "direction.safetensors")
            (root / name / "dim" / "metadata.json").write_text(json.dumps({"config": {
                "n_train": 8, "n_val": 4, "filter_prompts": False}}))

    def args(self, cmd: str, model=None, prompts=None, direction=None, run=None, out=None, extra=()) -> list:
        m = ["--model", model or self.model]
        p, d = prompts or self.prompts, direction or self.root / "d.safetensors"
        run, out = run or self.root / "run", out or self.root / "out"
        small = ["--profile", "ci", "--no-filter", "--n-train", "8"]
        return {
            "dim": ["dim", *m, "--out", out, "--profile", "ci"],
            "rdo": ["rdo", *m, "--run", run, *small],
            "cone": ["cone", *m, "--run", run, *small, "--dims", "2", "--init", "random"],
            "repind": ["repind", *m, "--run", run, *small, "--k", "1"],
            "traces": ["traces", *m, "--direction", d, "--ablate", d, "--prompts", p, "--out", out / "t.json"],
            "gcg": ["gcg", *m, "--run", run, "--profile", "ci", "--direction", d, "--prompts", p, "--steps", "1",
                    "--out", out],
            "eval": ["eval", *m, "--direction", d, "--intervention", "ablate", "--prompts", p, "--out", out / "e.json"],
            "bench": ["bench", *m, "--direction", d, "--tasks", "tiny_task", "--out", out / "b.json"],
            "export": ["export", *m, "--direction", d, "--out", out],
            "chat": ["chat", *m, "--direction", d],
            "reproduce": ["reproduce", *m, "--out", out, "--profile", "ci", "--stages", "dim"],
        }[cmd] + list(extra)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _blocked(w: World) -> Path:
    """An output path under a plain file: it can never be created."""
    (w.root / "file").write_text("x")
    return w.root / "file" / "out"


# (mistake, subcommands it applies to, how to make the argument list, what the error says)
CASES = [
    ("unknown model", SUBCOMMANDS, lambda w, c: w.args(c, model="not-a-model"), "unknown model 'not-a-model'"),
    ("empty prompt file", ("traces", "gcg", "eval"), lambda w, c: w.args(c, prompts=w.root / "empty.jsonl"),
     "is empty"),
    ("malformed prompt file", ("traces", "gcg", "eval"), lambda w, c: w.args(c, prompts=w.root / "bad.jsonl"),
     "bad.jsonl:2 is not valid JSON"),
    ("unreadable prompt file", ("traces", "gcg", "eval"), lambda w, c: w.args(c, prompts=w.root / "missing.jsonl"),
     "missing.jsonl"),
    ("direction of the wrong width", ("traces", "gcg", "eval", "bench", "export", "chat"),
     lambda w, c: w.args(c, direction=w.root / "wide.safetensors"), "width 64"),
    ("orthogonal-to of the wrong width", ("rdo",),
     lambda w, c: w.args(c, extra=["--orthogonal-to", w.root / "wide.safetensors"]), "width 64"),
    ("cone of the wrong width", ("eval",),
     lambda w, c: ["eval", "--model", w.model, "--cone", w.root / "wide_cone.safetensors", "--prompts", w.prompts,
                   "--out", w.root / "out" / "e.json"], "width 64"),
    ("layer out of range", ("rdo", "eval", "chat"),
     lambda w, c: w.args(c, extra=["--layer", "99"] + (["--intervention", "add"] if c != "rdo" else [])),
     "layer 99 is out of range"),
    ("run directory of another model", ("rdo", "cone", "repind", "gcg"),
     lambda w, c: w.args(c, run=w.root / "other"), "other-model"),
    ("run directory without DIM", ("rdo", "cone", "repind", "gcg"),
     lambda w, c: w.args(c, run=w.root / "nothing"), "refusal-tl dim --out"),
    ("unwritable output", ("dim", "traces", "gcg", "eval", "bench", "export", "reproduce"),
     lambda w, c: w.args(c, out=_blocked(w)), "cannot create output directory"),
]
MATRIX = [pytest.param(c, build, match, id=f"{c}: {name}") for name, cmds, build, match in CASES for c in cmds]


@pytest.mark.parametrize("cmd,build,match", MATRIX)
def test_bad_input(cmd, build, match, tiny_dir, tmp_path, capsys):
    w = World(tmp_path, tiny_dir)
    args = build(w, cmd)
    before = _files(tmp_path)
    code, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, match)
    assert _files(tmp_path) == before, sorted(map(str, _files(tmp_path) - before))  # nothing half-written


# (subcommand, the file it resumes from, relative to the test's folder)
RESUMED = [("rdo", "run/rdo/checkpoint.safetensors"), ("cone", "run/cone-2/checkpoint.safetensors"),
           ("repind", "run/repind-1/candidate0.safetensors"), ("gcg", "out/checkpoints/000.json"),
           ("gcg", "out/targets.json"), ("cone", "run/dim/metadata.json")]


@pytest.mark.parametrize("cmd,rel", RESUMED, ids=[f"{c}: corrupt {r}" for c, r in RESUMED])
def test_corrupt_checkpoint_or_cache(cmd, rel, tiny_dir, tmp_path, capsys):
    """A truncated file from an interrupted or foreign run: a one-line error naming the file and the
    fix, the file left as it was for inspection, and no temporary file left behind."""
    w = World(tmp_path, tiny_dir)
    bad = tmp_path / rel
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b'{"truncated": ')
    code, err = run_cli(capsys, *w.args(cmd, extra=["--accumulation", "4"] if cmd != "gcg" else []))
    assert_one_line_error(code, err, f"{bad} is not a readable")
    assert "delete it and rerun" in err
    assert bad.read_bytes() == b'{"truncated": '
    assert not [p for p in tmp_path.rglob("*.tmp")]
