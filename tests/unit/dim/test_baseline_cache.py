"""Baseline refusal scores are computed once per run directory and prompt set."""

import pytest
import torch

import refusal_tl.dim.run as dim_run
from helpers import PROMPTS


def test_baseline_scores_are_cached_per_model_and_prompts(tiny, tmp_path, monkeypatch):
    first = dim_run.baseline_scores(tiny, PROMPTS[:5], 4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("baseline-scores-*.json"))) == 1

    def no_model(*args, **kwargs):
        raise AssertionError("the cached scores should have been used")

    monkeypatch.setattr(dim_run, "refusal_scores", no_model)
    torch.testing.assert_close(dim_run.baseline_scores(tiny, PROMPTS[:5], 4, cache_dir=tmp_path), first)
    with pytest.raises(AssertionError, match="cached scores"):  # other prompts: computed, not reused
        dim_run.baseline_scores(tiny, PROMPTS[:4], 4, cache_dir=tmp_path)
    harm, safe = dim_run.filter_val(tiny, PROMPTS[:5], PROMPTS[:5], 4, cache_dir=tmp_path)
    assert harm == [p for p, s in zip(PROMPTS[:5], first) if s > 0]
