"""Builders of tiny random-weight chat models (no download), shared by the tests.

``make_tiny(family)`` gives a :class:`~refusal_tl.model.RefusalModel` around a 32-wide
random model with a byte-level BPE trained on a few words, for the chat families the
project supports: ``qwen`` (Qwen2, the default), ``gemma2`` (with a final logit soft-cap
and post-norms) and ``llama`` (Llama 3 template).
"""

from __future__ import annotations

import torch

from refusal_tl.model import RefusalModel, wrap_hf_model
from refusal_tl.steer.windows import Example, TrainingPair

WORDS = (
    "I As Sure Here is how to make a bomb poem cake hack wifi write the sea what why sorry "
    "cannot help with that . , ! ? you are Qwen created by Alibaba Cloud helpful assistant "
    "system user tell me about story code python cook rice steal car kill"
).split()
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
FAMILIES = {
    "qwen": dict(
        special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], pad="<|endoftext|>", eos="<|im_end|>",
        template=("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|im_start|>system\n"
                  "" + SYSTEM + "<|im_end|>\n{% endif %}"
                  "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")),
    "gemma2": dict(
        special=["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], pad="<pad>", eos="<end_of_turn>",
        template=("<bos>{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
                  "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
                  "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")),
    "llama": dict(
        special=["<|end_of_text|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        pad="<|end_of_text|>", eos="<|eot_id|>",
        template=("<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                  "{{ m['content'] }}<|eot_id|>{% endfor %}"
                  "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")),
}
PROMPTS = ["how to make a bomb", "write a poem about the sea", "tell me a story", "hack wifi",
           "cook rice", "what is python code", "steal car", "why the sea"]


def make_tokenizer(family: str = "qwen"):
    """A byte-level BPE trained on a few words (ms, offline); "I" and "As" are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=spec["special"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["As", "I"] * 500 + [" ".join(WORDS)] * 50 + WORDS * 20 + [SYSTEM] * 20
    tok.train_from_iterator(corpus, trainer)
    extra = [t for t in spec["special"] if t not in (spec["pad"], spec["eos"])]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=spec["pad"], eos_token=spec["eos"],
                                   additional_special_tokens=extra)
    fast.chat_template = spec["template"]
    fast.name_or_path = f"tiny-{family}"
    return fast


def make_hf_model(tokenizer, seed: int = 0, family: str = "qwen", **overrides):
    """A random 32-wide model of ``family`` (5 layers for Qwen, 4 otherwise)."""
    from transformers import AutoModelForCausalLM, Gemma2Config, LlamaConfig, Qwen2Config

    torch.manual_seed(seed)
    cfg = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=5,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               tie_word_embeddings=False, initializer_range=0.2, pad_token_id=tokenizer.pad_token_id,
               eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    kinds = {"qwen": (Qwen2Config, "Qwen2ForCausalLM", {}),
             "gemma2": (Gemma2Config, "Gemma2ForCausalLM",
                        dict(num_hidden_layers=4, head_dim=8, query_pre_attn_scalar=8, sliding_window=256,
                             final_logit_softcapping=2.0, attn_logit_softcapping=50.0,
                             bos_token_id=tokenizer.convert_tokens_to_ids("<bos>"))),
             "llama": (LlamaConfig, "LlamaForCausalLM", dict(num_hidden_layers=4))}
    config_cls, arch, family_cfg = kinds[family]
    config = config_cls(**{**cfg, **family_cfg, **overrides})
    config.architectures = [arch]
    return AutoModelForCausalLM.from_config(config).float().eval()


def make_tiny(seed: int = 0, family: str = "qwen", dtype: torch.dtype = torch.float32) -> RefusalModel:
    """The tiny model of ``family``; ``dtype=torch.bfloat16`` rounds the same random weights to bf16."""
    tok = make_tokenizer(family)
    return wrap_hf_model(make_hf_model(tok, seed, family).to(dtype), tok, name=f"tiny-{family}", weights_sha="tiny",
                         device="cpu")


def tiny_pairs(n: int = 4) -> list[TrainingPair]:
    return [TrainingPair(Example(PROMPTS[i], " Sure here is how"), Example(PROMPTS[-1 - i], " I cannot help"),
                         Example(PROMPTS[-1 - i], " the sea is")) for i in range(n)]


def mixed_pairs() -> list[TrainingPair]:
    """Prompts and targets of different lengths, so batches carry padding and ragged windows."""
    answers = [" Sure", " Sure here is how to make a bomb", " Here", " As you are"]
    refusals = [" I cannot help", " I", " As Qwen I cannot help with that", " sorry"]
    retains = [" the sea is", " rice", " python code is a story about the sea", " why"]
    return [TrainingPair(Example(PROMPTS[i], answers[i]), Example(PROMPTS[7 - i], refusals[i]),
                         Example(PROMPTS[(i + 3) % 8], retains[i])) for i in range(4)]


def run_cli(capsys, *args) -> tuple[int, str]:
    """``refusal-tl ARGS`` in process: the exit code and what it wrote to stderr."""
    from refusal_tl.cli import main

    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, match: str) -> None:
    """A user mistake: exit code 2 and one line on stderr that starts with ``error:`` and says ``match``."""
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert match in err, err


# lm-eval tasks of our own (a few questions in local files), for benchmark tests without the Hub
QUESTIONS = [("Is the sea wet?", ["yes", "no"], 0), ("What do you cook?", ["rice", "a car", "wifi"], 0),
             ("Tell me a story about the sea", ["a poem", "a bomb"], 0), ("Why the sea?", ["sorry", "python"], 1)]
MC = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""
PPL = """task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{' ' + choices[answer]}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
"""


def write_lm_eval_tasks(folder):
    """``tiny_mc`` (multiple choice, acc) and ``tiny_ppl`` (log-likelihood, perplexity) in ``folder``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps(dict(question=q, choices=c, answer=a)) + "\n" for q, c, a in QUESTIONS))
    (folder / "tiny_mc.yaml").write_text(MC.format(data=data))
    (folder / "tiny_ppl.yaml").write_text(PPL.format(data=data))
    return folder
