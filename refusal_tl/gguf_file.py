"""Write a Hugging Face causal LM as a GGUF file with the ``gguf`` package (docs/algorithms.md §10).

What llama.cpp's ``convert_hf_to_gguf.py`` does for the families this project exports, in a
form that needs nothing but the package index:

- metadata under llama.cpp's key names (context length, widths, heads, RoPE base, RMSNorm ε);
- every tensor renamed with gguf's own name map (the map transformers' GGUF loader inverts);
  Llama's q/k rows are permuted into llama.cpp's RoPE layout, Qwen2's are not;
- the byte-level BPE tokenizer: tokens (padded to the embedding's row count), token types,
  merges, special ids, the pre-tokenizer name that selects the split regex, the chat template.

Tensors are written as F32 (exact) or F16 (half the file); norms and biases stay F32 as llama.cpp
keeps them. The file is written to ``path`` directly: callers write into a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

from refusal_tl.errors import RefusalTLError

FAMILIES = ("qwen2", "llama")
DTYPES = ("f32", "f16")


def write_gguf(hf_model, tokenizer, path: str | Path, dtype: str = "f32", name: str = "") -> Path:
    """Write ``hf_model`` (a Qwen2 or Llama ``*ForCausalLM``) and ``tokenizer`` to ``path``."""
    config = hf_model.config
    check_gguf(config, tokenizer, dtype)
    writer = gguf.GGUFWriter(str(path), config.model_type)
    _write_config(writer, config, name, dtype)
    _write_tokenizer(writer, tokenizer, config.vocab_size)
    for gguf_name, array in _tensors(hf_model, dtype):
        writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def check_gguf(config, tokenizer, dtype: str = "f32") -> None:
    """Raise a one-line error, before any work, when this model cannot be written as GGUF here."""
    hint = "export --format hf and convert that folder with llama.cpp's convert_hf_to_gguf.py."
    if config.model_type not in FAMILIES:
        raise RefusalTLError(f"GGUF export supports {', '.join(FAMILIES)} models, not {config.model_type!r}: {hint}")
    if dtype not in DTYPES:
        raise RefusalTLError(f"unknown GGUF tensor type {dtype!r}: choose one of {', '.join(DTYPES)}.")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise RefusalTLError(f"GGUF export does not write RoPE scaling {rope.get('rope_type')!r}: {hint}")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE" or "ByteLevel" not in json.dumps(spec["pre_tokenizer"]):
        raise RefusalTLError(f"GGUF export writes byte-level BPE tokenizers only (Qwen2, Llama 3): {hint}")


def _write_config(writer, config, name: str, dtype: str) -> None:
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name or config.model_type)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    kind = gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(kind)


def _write_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise RefusalTLError(f"the tokenizer has ids up to {max(by_id)} but the model only {vocab_size} rows.")
    added = {t.content: t.special for t in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(vocab_size):  # rows the tokenizer never emits are padding, as llama.cpp writes them
        token = by_id.get(i)
        tokens.append(token if token is not None else f"[PAD{i}]")
        kind = (gguf.TokenType.UNUSED if token is None else gguf.TokenType.NORMAL if token not in added
                else gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(spec["pre_tokenizer"]))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, key, None)
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(False)  # the chat templates write their own BOS where the family has one
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's name for the split regex in ``pre`` (the one transformers' GGUF loader maps back)."""
    patterns = set(_regexes(pre))
    for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
        if regex in patterns:
            return name
    return "default"  # GPT-2's own regex, inside the ByteLevel pre-tokenizer


def _regexes(node):
    """Every ``{"Regex": ...}`` pattern in a tokenizer.json fragment."""
    if isinstance(node, dict):
        if isinstance(node.get("Regex"), str):
            yield node["Regex"]
        for value in node.values():
            yield from _regexes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _regexes(value)


def _tensors(hf_model, dtype: str):
    """``(gguf name, numpy array)`` for every weight of ``hf_model``."""
    config = hf_model.config
    arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == config.model_type)
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    for hf_name, tensor in hf_model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        base, suffix = hf_name.rsplit(".", 1)
        mapped = names.get_name(base)
        if mapped is None:
            raise RefusalTLError(f"no GGUF name for {hf_name}: export --format hf and convert it with llama.cpp.")
        w = tensor.detach().to(torch.float32)
        if config.model_type == "llama" and mapped.endswith(("attn_q", "attn_k")):
            heads = config.num_attention_heads if mapped.endswith("attn_q") else config.num_key_value_heads
            w = _permute_rope(w, heads)
        array = w.cpu().numpy()
        if dtype == "f16" and array.ndim == 2:  # matrices in half precision; norms and biases stay F32
            array = array.astype(np.float16)
        yield f"{mapped}.{suffix}", array


def _permute_rope(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row order for Llama (each head's rotary halves interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
