"""Shared fixtures: a tiny random-weight Qwen2-style chat model (no download), seeding, and a
check that the test session leaves the git work tree as it found it."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import make_tiny

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


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when tests or notebooks wrote into the tracked tree (figures/, prompts, ...)."""
    before, after = getattr(session.config, "_tree_before", None), _git_status()
    if before is None or after is None or before == after:
        return
    changed = sorted(set(after.splitlines()) - set(before.splitlines()))
    print("\nERROR: the test session changed the git work tree:\n  " + "\n  ".join(changed))
    session.exitstatus = 1


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
