"""Shared fixtures: a tiny random-weight Qwen2-style chat model (no download), seeding, and a
check that the test session leaves the git work tree as it found it.

One run directory serves the whole session (``REFUSAL_TL_RUN_DIR``, a fresh temporary folder
unless set): the integration tests compute the ci-profile DIM and RDO runs there, and the
notebooks, executed later in the same session (their kernels inherit the environment),
resume from them instead of computing them a second time.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from helpers import make_hf_model, make_tiny, make_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def _git_status() -> str | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def pytest_sessionstart(session):
    session.config._tree_before = _git_status()
    if "REFUSAL_TL_RUN_DIR" not in os.environ:
        session.config._run_dir = os.environ["REFUSAL_TL_RUN_DIR"] = tempfile.mkdtemp(prefix="refusal_tl-tests-")


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when tests or notebooks wrote into the tracked tree (figures/, prompts, ...)."""
    if getattr(session.config, "_run_dir", None):
        shutil.rmtree(session.config._run_dir, ignore_errors=True)
    before, after = getattr(session.config, "_tree_before", None), _git_status()
    if before is None or after is None or before == after:
        return
    changed = sorted(set(after.splitlines()) - set(before.splitlines()))
    print("\nERROR: the test session changed the git work tree:\n  " + "\n  ".join(changed))
    session.exitstatus = 1


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny model saved as a Hugging Face folder (for the command line's ``--model``)."""
    path = tmp_path_factory.mktemp("tiny-model")
    tok = make_tokenizer()
    make_hf_model(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny():
    torch.set_grad_enabled(False)
    return make_tiny()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    yield
