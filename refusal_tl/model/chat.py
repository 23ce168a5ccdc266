"""Chat formatting: template, post-instruction (EOI) tokens, refusal tokens, left padding.

Context: refusal directions live at the *post-instruction* positions, the template
tokens after the user's text (``<|im_end|>\\n<|im_start|>assistant\\n`` for Qwen,
``<end_of_turn>\\n<start_of_turn>model\\n`` for Gemma 2). :class:`ChatFormat` derives them
from the tokenizer's own chat template by rendering it around a sentinel, and checks
that every tokenised prompt really ends with them.

**Tokenise here, with the HF tokenizer, and pass ids to the model**: the bridge's own
tokenizer can prepend a BOS that Qwen never uses. The template adds its own special
tokens (Qwen's default system prompt is kept), so ``add_special_tokens=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from refusal_tl.errors import RefusalTLError

_SENTINEL = "\x00INSTRUCTION\x00"

# Refusal tokens per model family (docs/algorithms.md §0): the first token of a typical refusal.
REFUSAL_WORDS: dict[str, tuple[str, ...]] = {
    "qwen": ("I", "As"),
    "gemma": ("I",),
    "llama": ("I",),
}


@dataclass
class Batch:
    """Left-padded token ids and their attention mask.

    With ``prefix`` set, ``ids`` hold only what follows a token prefix shared by every
    row (the chat template's system prompt), which :mod:`refusal_tl.forward` runs once and
    reuses through the KV cache.
    """

    ids: Int[Tensor, "batch pos"]
    mask: Int[Tensor, "batch pos"]
    prefix: Int[Tensor, "1 prefix"] | None = None

    def to(self, device: torch.device | str) -> "Batch":
        prefix = None if self.prefix is None else self.prefix.to(device)
        return Batch(self.ids.to(device), self.mask.to(device), prefix)

    def __len__(self) -> int:
        return self.ids.shape[0]


@dataclass
class ChatFormat:
    """How one model turns an instruction into prompt tokens."""

    tokenizer: object
    prefix: str
    suffix: str
    eoi_ids: list[int]
    refusal_ids: list[int]

    system: str | None = None  # the system prompt; None: the template's default (Qwen inserts its own)

    @classmethod
    def from_tokenizer(cls, tokenizer, family: str | None = None, system: str | None = None) -> "ChatFormat":
        if not getattr(tokenizer, "chat_template", None):
            raise RefusalTLError(
                "this tokenizer has no chat template; refusal_tl needs an instruction-tuned "
                "chat model (e.g. Qwen2.5-*-Instruct, gemma-2-*-it, Llama-3-*-Instruct)."
            )
        turns = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": _SENTINEL}]
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        prefix, suffix = text.split(_SENTINEL)
        eoi_ids = tokenizer(suffix, add_special_tokens=False).input_ids
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        family = family or guess_family(tokenizer)
        return cls(tokenizer, prefix, suffix, eoi_ids, refusal_token_ids(tokenizer, family), system)

    def with_system(self, system: str | None) -> "ChatFormat":
        """The same format with ``system`` as the system prompt (heretic's protocol: "You are a helpful
        assistant."); a template without a system turn (Gemma 2) raises a clear error."""
        try:
            return ChatFormat.from_tokenizer(self.tokenizer, system=system)
        except Exception as e:  # jinja's TemplateError for "System role not supported"
            raise RefusalTLError(f"this model's chat template takes no system prompt ({e}); "
                                 "evaluate it without one.") from None

    @property
    def n_eoi(self) -> int:
        return len(self.eoi_ids)

    def format(self, instruction: str) -> str:
        return self.prefix + instruction + self.suffix

    def tokenize(
        self, instructions: list[str], completions: list[str] | None = None, share_prefix: bool = False
    ) -> Batch:
        """Left-padded ids of the chat prompts (plus optional completions appended).

        ``share_prefix=True`` splits off the template prefix (see :class:`Batch`) when it
        tokenises identically in every prompt, and falls back to full rows otherwise.
        """
        if not instructions:
            raise RefusalTLError("no prompts to tokenise: the prompt list is empty.")
        texts = [self.format(x) for x in instructions]
        if completions is not None:
            texts = [t + c for t, c in zip(texts, completions, strict=True)]
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        if completions is None:
            tail = torch.tensor(self.eoi_ids)
            assert torch.equal(enc.input_ids[:, -self.n_eoi :], tail.expand(len(texts), -1)), (
                "post-instruction tokens changed when joined to an instruction; "
                "the EOI positions would be wrong"
            )
        full = Batch(enc.input_ids, enc.attention_mask)
        return self._split_prefix(full, [t[len(self.prefix):] for t in texts]) if share_prefix else full

    def _split_prefix(self, full: Batch, rests: list[str]) -> Batch:
        prefix = self.tokenizer(self.prefix, add_special_tokens=False, return_tensors="pt").input_ids
        if prefix.shape[1] == 0:
            return full
        rest = self.tokenizer(rests, add_special_tokens=False, padding=True, return_tensors="pt")
        for row in range(len(rests)):  # the split must not change a single token
            joined = torch.cat([prefix[0], rest.input_ids[row][rest.attention_mask[row].bool()]])
            if not torch.equal(joined, full.ids[row][full.mask[row].bool()]):
                return full
        return Batch(rest.input_ids, rest.attention_mask, prefix)


def guess_family(tokenizer) -> str:
    name = (getattr(tokenizer, "name_or_path", "") or "").lower()
    template = tokenizer.chat_template or ""
    if "qwen" in name or "<|im_start|>" in template:
        return "qwen"
    if "gemma" in name or "<start_of_turn>" in template:
        return "gemma"
    return "llama"


def refusal_token_ids(tokenizer, family: str) -> list[int]:
    """Ids of the single-token refusal openings of ``family`` (docs/algorithms.md §0)."""
    ids = []
    for word in REFUSAL_WORDS.get(family, ("I",)):
        toks = tokenizer(word, add_special_tokens=False).input_ids
        assert len(toks) == 1, f"refusal word {word!r} is not a single token: {toks}"
        ids.append(toks[0])
    return ids
