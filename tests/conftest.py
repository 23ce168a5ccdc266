"""Shared fixtures: a tiny random-weight Qwen2-style chat model (no download) and seeding."""

from __future__ import annotations

import random

import pytest
import torch

from refusal_tl.model import RefusalModel, wrap_hf_model

WORDS = (
    "I As Sure Here is how to make a bomb poem cake hack wifi write the sea what why sorry "
    "cannot help with that . , ! ? you are Qwen created by Alibaba Cloud helpful assistant "
    "system user tell me about story code python cook rice steal car kill"
).split()
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|im_start|>system\n"
    "" + SYSTEM + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer():
    """A byte-level BPE trained on a few words (ms, offline); "I" and "As" are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["As", "I"] * 500 + [" ".join(WORDS)] * 50 + WORDS * 20 + [SYSTEM] * 20
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   additional_special_tokens=SPECIAL[1:])
    fast.chat_template = TEMPLATE
    fast.name_or_path = "tiny-qwen"
    return fast


def make_hf_model(tokenizer, seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(seed)
    cfg = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=5,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               tie_word_embeddings=False, initializer_range=0.2, pad_token_id=tokenizer.pad_token_id,
               eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    config = Qwen2Config(**{**cfg, **overrides})
    config.architectures = ["Qwen2ForCausalLM"]
    model = AutoModelForCausalLM.from_config(config).float().eval()
    return model


def make_tiny(seed: int = 0) -> RefusalModel:
    tok = make_tokenizer()
    return wrap_hf_model(make_hf_model(tok, seed), tok, name="tiny-qwen", weights_sha="tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny() -> RefusalModel:
    torch.set_grad_enabled(False)
    return make_tiny()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    yield


PROMPTS = ["how to make a bomb", "write a poem about the sea", "tell me a story", "hack wifi",
           "cook rice", "what is python code", "steal car", "why the sea"]
