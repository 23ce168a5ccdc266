"""The weight-orthogonalised export of the bundled model equals hook ablation (ci-profile DIM, float32;
bf16 export parity is tested on the tiny models)."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from refusal_tl import data
from refusal_tl.eval.evaluate import evaluate_intervention
from refusal_tl.export import GGUF_NAME, export_model
from refusal_tl.model import load_model
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.hooks import ablation_hooks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(qwen32, dim_run32, tmp_path_factory):
    return export_model(qwen32, dim_run32.direction, tmp_path_factory.mktemp("export") / "qwen-dim")


def test_plain_transformers_logits_equal_hook_ablation(qwen32, dim_run32, exported):
    prompts = data.bundled("harmful", "test", 4) + data.bundled("harmless", "test", 2)
    batch = qwen32.chat.tokenize(prompts, share_prefix=False)
    hooked = last_logits(qwen32, batch, ablation_hooks(dim_run32.direction.vector, qwen32.n_layers))
    plain = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = plain(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]
    delta = (logits - hooked).abs().max().item()
    print(f"max |Δ logit| exported vs hooks: {delta:.2e}")
    assert delta <= 1e-4


def test_exported_model_answers_like_the_hook_ablated_one(qwen32, dim_run32, exported):
    prompts = data.bundled("harmful", "test", 8)
    hooked = evaluate_intervention(qwen32, prompts, dim_run32.direction, "ablate", max_new_tokens=16)
    baked = evaluate_intervention(load_model(str(exported), dtype="float32"), prompts, max_new_tokens=16)
    assert baked.completions == hooked.completions
    assert baked.rate == hooked.rate


def test_gguf_export_reproduces_hook_ablation_and_the_tokenizer(qwen32, dim_run32, tmp_path):
    out = export_model(qwen32, dim_run32.direction, tmp_path / "qwen-dim-gguf", fmt="gguf")
    prompts = data.bundled("harmful", "test", 4) + data.bundled("harmless", "test", 2)
    batch = qwen32.chat.tokenize(prompts, share_prefix=False)
    hooked = last_logits(qwen32, batch, ablation_hooks(dim_run32.direction.vector, qwen32.n_layers))
    baked = load_model(str(out / GGUF_NAME), dtype="float32")  # transformers' GGUF loader, as for the bundled model
    assert torch.equal(baked.chat.tokenize(prompts, share_prefix=False).ids, batch.ids)
    delta = (last_logits(baked, batch) - hooked).abs().max().item()
    print(f"max |Δ logit| GGUF export vs hooks: {delta:.2e}")
    assert delta <= 1e-4


def test_lora_adapter_on_the_bundled_model_equals_hook_ablation(qwen32, dim_run32, tmp_path):
    """`export --format lora`: a rank-1 adapter (o_proj, down_proj, the embedding) on the unedited
    bundled model gives the hook-ablated logits (float32) and the same greedy answers."""
    from peft import PeftModel

    from refusal_tl.model.bundled import bundled_dir
    from refusal_tl.model.load import wrap_hf_model

    out = export_model(qwen32, dim_run32.direction, tmp_path / "qwen-dim-lora", fmt="lora")
    base = AutoModelForCausalLM.from_pretrained(bundled_dir(), dtype=torch.float32).eval()
    adapted = PeftModel.from_pretrained(base, out).eval()
    prompts = data.bundled("harmful", "test", 4) + data.bundled("harmless", "test", 2)
    batch = qwen32.chat.tokenize(prompts, share_prefix=False)
    hooked = last_logits(qwen32, batch, ablation_hooks(dim_run32.direction.vector, qwen32.n_layers))
    with torch.no_grad():
        logits = adapted(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]
    delta = (logits - hooked).abs().max().item()
    print(f"max |Δ logit| LoRA adapter vs hooks: {delta:.2e}")
    assert delta <= 1e-4
    harmful = data.bundled("harmful", "test", 8)
    hook_answers = evaluate_intervention(qwen32, harmful, dim_run32.direction, "ablate", max_new_tokens=16)
    merged = wrap_hf_model(adapted.merge_and_unload(), qwen32.tokenizer, name="lora-merged", device="cpu")
    assert evaluate_intervention(merged, harmful, max_new_tokens=16).completions == hook_answers.completions
