"""LoRA export of abliteration edits: exact for projections (logits and greedy answers equal the
hooks'), a measured approximation for MPOA."""

import pytest
import torch

from helpers import PROMPTS, make_hf_model, make_tiny, make_tokenizer
from refusal_tl.steer.edit import Edit, Kernel, edit_hooks
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.lora import lora_factors, lora_model


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _hf_logits(hf, batch):
    with torch.no_grad():
        return hf(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1].float()


@pytest.mark.parametrize("family", ["qwen", "llama"])
@pytest.mark.parametrize("which", ["ablation", "kernel-span"])
def test_lora_adapter_equals_the_hooks_and_reloads(family, which, tmp_path):
    from peft import PeftModel

    model = make_tiny(family=family)
    n, d = model.n_layers, model.d_model
    edit = (Edit.ablation(_rand(d, seed=1), n) if which == "ablation" else
            Edit.of(_rand(2, d, seed=2), n, attn=Kernel(1.2, 2.0, 0.3, 2.0), mlp=Kernel(0.9, 1.0, 0.5, 3.0)))
    batch = model.chat.tokenize(PROMPTS, share_prefix=False)
    with torch.no_grad():
        hooked = last_logits(model, batch, edit_hooks(model, edit))
    tok = make_tokenizer(family)
    peft_model, factors = lora_model(make_hf_model(tok, seed=0, family=family), edit)
    assert all(f.error == 0.0 for f in factors.values())
    assert {f.A.shape[0] for f in factors.values()} == {edit.bases.shape[1]}  # rank 1 per direction, k for a span
    torch.testing.assert_close(_hf_logits(peft_model, batch), hooked, atol=1e-4, rtol=1e-4)
    peft_model.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(make_hf_model(tok, seed=0, family=family), tmp_path / "adapter")
    torch.testing.assert_close(_hf_logits(loaded, batch), hooked, atol=1e-4, rtol=1e-4)
    # greedy answers: the adapter's equal the hooks'
    from refusal_tl.model.load import wrap_hf_model
    from refusal_tl.steer.generation import generate

    merged = wrap_hf_model(loaded.merge_and_unload(), tok, name="merged", device="cpu")
    assert generate(merged, PROMPTS, 8, desc=None) == generate(model, PROMPTS, 8, edit_hooks(model, edit), desc=None)


def test_mpoa_lora_error_falls_with_rank_and_vanishes_at_full_rank():
    tok = make_tokenizer()
    edit = Edit.of(_rand(32, seed=1), 5, norm_preserving=True)
    errs = {r: max(f.error for f in lora_factors(make_hf_model(tok, seed=0), edit, r).values()) for r in (1, 3, 32)}
    assert errs[1] > errs[3] > 0 and errs[32] < 1e-5
