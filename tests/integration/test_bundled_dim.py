"""DIM on the bundled Qwen2.5-Coder-0.5B-Instruct end to end, ci profile (minutes)."""

from pathlib import Path

import pytest
import torch

from refusal_tl import data
from refusal_tl.dim import run_dim
from refusal_tl.eval.evaluate import evaluate_intervention, first_token_kl
from refusal_tl.geometry import RefusalDirection

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden"


def test_qwen_chat_format(qwen):
    chat = qwen.chat
    assert chat.n_eoi == 5
    assert qwen.tokenizer.convert_ids_to_tokens(chat.eoi_ids) == ["<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ"]
    assert chat.refusal_ids == [40, 2121]
    assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in chat.prefix
    ids = chat.tokenize(["hi"]).ids[0]
    assert qwen.tokenizer.convert_ids_to_tokens(int(ids[0])) == "<|im_start|>"  # no BOS


def test_dim_run_writes_everything(dim_run):
    out = dim_run.run_dir
    for name in ("direction.safetensors", "direction.json", "selection.csv", "metadata.json",
                 "candidates.safetensors", "figures/selection_landscape.html"):
        assert (out / name).is_file(), name
    assert dim_run.direction.layer < int(24 * 0.8)
    assert dim_run.direction.vector.shape == (896,)
    assert dim_run.selection.best.bypass < dim_run.selection.baseline_bypass


def test_ablation_lowers_refusal_on_held_out_harmful(qwen, dim_run):
    prompts = data.bundled("harmful", "test", 24)
    base = evaluate_intervention(qwen, prompts, max_new_tokens=24)
    ablated = evaluate_intervention(qwen, prompts, dim_run.direction, "ablate", max_new_tokens=24)
    print(f"refusal rate: baseline {base.rate:.2f}, ablated {ablated.rate:.2f}")
    assert base.rate >= 0.2  # the model refuses a good share of blatant requests
    assert ablated.rate <= base.rate / 2


def test_ablation_keeps_harmless_first_token(qwen, dim_run):
    # held out, the small ci profile's noisier pick may exceed the selection's 0.1
    # (the cpu profile is measured against 0.1 in the README)
    kl = first_token_kl(qwen, data.bundled("harmless", "test", 16), dim_run.direction)
    assert kl <= 0.3


def test_same_direction_as_before_the_package_was_reorganised(dim_run32):
    """``golden/dim_ci.safetensors``: the ci-profile direction written by commit f61d55b (float32)."""
    old = RefusalDirection.load(GOLDEN / "dim_ci.safetensors")
    assert (old.layer, old.pos) == (dim_run32.direction.layer, dim_run32.direction.pos)
    torch.testing.assert_close(dim_run32.direction.vector, old.vector, atol=1e-5, rtol=1e-5)


def test_rerun_resumes_from_checkpoints(qwen, dim_run):
    again = run_dim(dim_run.config, dim_run.run_dir.parent, qwen)
    assert again.seconds["extract"] < 5 and again.seconds["select"] < 60
    torch.testing.assert_close(again.direction.vector, dim_run.direction.vector)
