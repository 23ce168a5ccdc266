"""Weight-orthogonalised export: plain transformers reproduces hook ablation."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tl.errors import RefusalTLError
from refusal_tl.export import GGUF_NAME, INFO, export_model
from refusal_tl.geometry import RefusalDirection
from refusal_tl.io import _umask
from refusal_tl.model.load import wrap_hf_model
from refusal_tl.steer.forward import last_logits
from refusal_tl.steer.hooks import ablation_hooks
from tests.helpers import PROMPTS, make_hf_model, make_tiny, make_tokenizer


def direction(model, seed=0, layer=2):
    g = torch.Generator().manual_seed(seed)
    return RefusalDirection(torch.randn(model.d_model, generator=g), layer, -1, model.name, model.weights_sha)


def plain_logits(folder, batch):
    """Logits of the exported folder loaded with nothing but transformers."""
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]


def test_export_loads_in_transformers_and_equals_hook_ablation(tiny, tmp_path):
    d = direction(tiny)
    batch = tiny.chat.tokenize(PROMPTS, share_prefix=False)
    hooked = last_logits(tiny, batch, ablation_hooks(d.vector, tiny.n_layers))
    before = last_logits(tiny, batch)
    out = export_model(tiny, d, tmp_path / "baked")
    exported = plain_logits(out, batch)
    assert (exported - before).abs().max() > 1e-2  # the export changed the model
    assert (exported - hooked).abs().max() <= 1e-4
    torch.testing.assert_close(last_logits(tiny, batch), before)  # the loaded model was not touched
    info = json.loads((out / INFO).read_text())
    assert info["directions"][0]["layer"] == 2 and info["source_model"] == tiny.name
    assert AutoTokenizer.from_pretrained(out).chat_template == tiny.tokenizer.chat_template
    assert not list(tmp_path.glob(".baked*"))  # no temporary folder left behind
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()  # the usual permissions, not mkdtemp's 0700


def test_tied_embeddings_are_untied_so_the_unembedding_stays(tmp_path):
    tok = make_tokenizer()
    tied = wrap_hf_model(make_hf_model(tok, seed=3, tie_word_embeddings=True), tok, name="tiny-tied", device="cpu")
    assert tied.hf_model.config.tie_word_embeddings
    d = direction(tied, seed=1)
    batch = tied.chat.tokenize(PROMPTS[:3], share_prefix=False)
    hooked = last_logits(tied, batch, ablation_hooks(d.vector, tied.n_layers))
    out = export_model(tied, d, tmp_path / "baked")
    assert (plain_logits(out, batch) - hooked).abs().max() <= 1e-4


def test_several_directions_bake_their_span(tiny, tmp_path):
    ds = [direction(tiny, seed=s) for s in (0, 1)]
    batch = tiny.chat.tokenize(PROMPTS[:3], share_prefix=False)
    both = torch.stack([d.vector for d in ds])
    hooked = last_logits(tiny, batch, ablation_hooks(both, tiny.n_layers))
    out = export_model(tiny, ds, tmp_path / "baked")
    assert (plain_logits(out, batch) - hooked).abs().max() <= 1e-4


def test_bad_exports_are_one_line_errors_and_write_nothing(tiny, tmp_path):
    wrong = RefusalDirection(torch.randn(tiny.d_model + 1), 1, -1, "other", "x")
    with pytest.raises(RefusalTLError, match="width"):
        export_model(tiny, wrong, tmp_path / "a")
    with pytest.raises(RefusalTLError, match="format"):
        export_model(tiny, direction(tiny), tmp_path / "b", fmt="onnx")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(RefusalTLError, match="not a refusal_tl export"):
        export_model(tiny, direction(tiny), tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_gguf_export_loads_in_transformers_and_equals_hook_ablation(family, tmp_path):
    from refusal_tl.model import load_model

    model = make_tiny(family=family)
    d = direction(model)
    batch = model.chat.tokenize(PROMPTS, share_prefix=False)
    hooked = last_logits(model, batch, ablation_hooks(d.vector, model.n_layers))
    out = export_model(model, d, tmp_path / "baked", fmt="gguf")
    assert sorted(p.name for p in out.iterdir()) == [GGUF_NAME, INFO]
    plain = AutoModelForCausalLM.from_pretrained(out, gguf_file=GGUF_NAME, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = plain(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]
    assert (logits - hooked).abs().max() <= 1e-4  # llama: q/k rows permuted for llama.cpp and back
    # the tokenizer travels in the file: same ids for the chat-formatted prompts, same template
    again = load_model(str(out / GGUF_NAME), dtype="float32")
    assert torch.equal(again.chat.tokenize(PROMPTS, share_prefix=False).ids, batch.ids)
    assert again.tokenizer.chat_template == model.tokenizer.chat_template
    assert again.tokenizer.eos_token == model.tokenizer.eos_token
    assert (last_logits(again, batch) - hooked).abs().max() <= 1e-4
    assert json.loads((out / INFO).read_text())["format"] == "gguf"


def test_gguf_f16_halves_the_matrices(tiny, tmp_path):
    d = direction(tiny)
    batch = tiny.chat.tokenize(PROMPTS[:3], share_prefix=False)
    hooked = last_logits(tiny, batch, ablation_hooks(d.vector, tiny.n_layers))
    f32 = export_model(tiny, d, tmp_path / "f32", fmt="gguf") / GGUF_NAME
    f16 = export_model(tiny, d, tmp_path / "f16", fmt="gguf", gguf_dtype="f16") / GGUF_NAME
    assert f16.stat().st_size < 0.6 * f32.stat().st_size
    half = AutoModelForCausalLM.from_pretrained(f16.parent, gguf_file=GGUF_NAME, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = half(input_ids=batch.ids, attention_mask=batch.mask).logits[:, -1]
    delta = (logits - hooked).abs().max()
    assert 0 < delta <= 0.05  # rounded, not broken


def test_gguf_export_of_an_unsupported_family_names_the_converter(tmp_path):
    gemma = make_tiny(family="gemma2")
    with pytest.raises(RefusalTLError, match="convert_hf_to_gguf"):
        export_model(gemma, direction(gemma), tmp_path / "g", fmt="gguf")
    with pytest.raises(RefusalTLError, match="f32, f16"):
        export_model(make_tiny(), direction(make_tiny()), tmp_path / "q", fmt="gguf", gguf_dtype="q4")
    assert not list(tmp_path.iterdir())
